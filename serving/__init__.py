"""kws.serving"""
