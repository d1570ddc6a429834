"""kws.converters: ``kws-convert``, a training run -> int8 / float TFLite, frozen .pb, C array for
TFLite Micro, manifest.json and convert_report.json (every artifact verified on the test split).

Modules: convert (the pipeline), source (run folder and features), tflite, frozen, carray,
flatbuffer (a .tflite reader), opcheck (op versions vs tflite-runtime 2.14), evaluate, report, cli.
"""
