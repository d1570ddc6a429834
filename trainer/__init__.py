"""kws.trainer"""
