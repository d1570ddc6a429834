"""kws.converters"""
