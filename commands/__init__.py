"""kws: an edge keyword-spotting toolkit.

Sub-packages: ``kws.edge`` (TensorFlow-free runtime: frontend, manifest, recognizer),
``kws.trainer`` (training), ``kws.converters`` (TFLite / frozen graph / C array),
``kws.synth`` (TTS datasets), ``kws.evaluation`` (predict / eval / inspect) and
``kws.serving`` (DEEPaaS API and web page).
"""
__version__ = "0.1.0"
