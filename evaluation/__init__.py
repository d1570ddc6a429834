"""kws.evaluation"""
