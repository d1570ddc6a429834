"""kws.edge"""
