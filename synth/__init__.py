"""kws.synth"""
