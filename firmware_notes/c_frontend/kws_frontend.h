/*
 * kws_frontend: reference C99 implementation of the kws feature frontend
 * (firmware_notes/frontend_spec.md; the Python original is kws.edge.frontend).
 *
 * - No dynamic allocation: every table and buffer lives in the structs below, sized by the
 *   KWS_MAX_* macros. Declare them static (or on a large enough stack) and init them once.
 * - float32 arithmetic per frame; the tables are computed once at init in double precision,
 *   exactly as numpy computes them, then stored as float.
 * - Own radix-2 real FFT (an N/2-point complex FFT plus a split step), so no library beyond libm.
 *
 * Streaming: push int16 (or float) samples as they arrive; each call returns when one frame is
 * complete, so a caller loops until every sample is consumed (see kws_frontend_push_i16).
 */
#ifndef KWS_FRONTEND_H
#define KWS_FRONTEND_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Capacity, fixed at compile time (override with -D...). The defaults fit the default
 * kws config (480-sample window, 512-point FFT, 40 mel bins, 40 MFCCs, 98 frames). */
#ifndef KWS_MAX_FFT_SIZE
#define KWS_MAX_FFT_SIZE 512 /* power of two >= window_samples */
#endif
#ifndef KWS_MAX_MEL_BINS
#define KWS_MAX_MEL_BINS 40
#endif
#ifndef KWS_MAX_FEATURES
#define KWS_MAX_FEATURES 40
#endif
#ifndef KWS_MAX_FRAMES
#define KWS_MAX_FRAMES 98 /* model input frames, for kws_feature_window_t */
#endif

#define KWS_MAX_WINDOW KWS_MAX_FFT_SIZE
#define KWS_MAX_FFT_BINS (KWS_MAX_FFT_SIZE / 2 + 1)
/* Each FFT bin lies inside at most two triangular filters. */
#define KWS_MAX_MEL_WEIGHTS (2 * KWS_MAX_FFT_BINS)

#define KWS_LOG_OFFSET 1e-6f  /* features = log(mel_energy + KWS_LOG_OFFSET) */
#define KWS_INT16_SCALE 32768.0f

typedef enum {
    KWS_FEATURES_MFCC = 0,
    KWS_FEATURES_LOG_MEL = 1
} kws_feature_type_t;

/* The manifest's "frontend" section, in samples (window_samples = round(sample_rate *
 * window_ms / 1000), see frontend_spec.md). fft_size 0 means: next power of two >= window. */
typedef struct {
    int sample_rate;
    int window_samples;
    int stride_samples;
    int fft_size;
    kws_feature_type_t feature_type;
    int num_mel_bins;
    int num_features;
    double lower_hz;
    double upper_hz;
} kws_frontend_config_t;

typedef enum {
    KWS_OK = 0,
    KWS_ERR_NULL = -1,          /* a NULL pointer argument */
    KWS_ERR_CONFIG = -2,        /* inconsistent config (see frontend_spec.md, "Parameters") */
    KWS_ERR_CAPACITY = -3       /* config larger than the KWS_MAX_* macros allow */
} kws_status_t;

typedef struct {
    kws_frontend_config_t cfg;
    int num_fft_bins;                               /* fft_size / 2 + 1 */
    /* tables, filled by kws_frontend_init */
    float window[KWS_MAX_WINDOW];                   /* periodic Hann */
    float twiddle_re[KWS_MAX_FFT_SIZE / 2];         /* cos(2 pi k / fft_size) */
    float twiddle_im[KWS_MAX_FFT_SIZE / 2];         /* -sin(2 pi k / fft_size) */
    uint16_t bitrev[KWS_MAX_FFT_SIZE / 2];          /* bit reversal of the fft_size/2 FFT */
    int16_t mel_first_bin[KWS_MAX_MEL_BINS];        /* first FFT bin with a non-zero weight */
    int16_t mel_num_weights[KWS_MAX_MEL_BINS];      /* how many consecutive bins */
    int16_t mel_weight_offset[KWS_MAX_MEL_BINS];    /* where they start in mel_weights */
    float mel_weights[KWS_MAX_MEL_WEIGHTS];
    float dct[KWS_MAX_MEL_BINS * KWS_MAX_FEATURES]; /* dct[n * num_features + k] */
    /* streaming state and scratch */
    float samples[KWS_MAX_WINDOW];                  /* the frame being filled */
    int num_buffered;
    uint32_t frames_emitted;                        /* frames since init/reset; wraps after 2^32 (497 days
                                                       at 10 ms): derive times from it in uint32_t ms,
                                                       see microcontroller.md section 4 */
    float fft[KWS_MAX_FFT_SIZE];                    /* fft_size/2 complex values, re/im interleaved */
    float power[KWS_MAX_FFT_BINS];
    float log_mel[KWS_MAX_MEL_BINS];
} kws_frontend_t;

/* The default kws config: 16 kHz, 480/160 samples (30/10 ms), MFCC, 40 mel bins, 40 features,
 * 20..7600 Hz. */
kws_frontend_config_t kws_frontend_default_config(void);

/* Validate cfg and compute every table. Returns KWS_OK or a negative kws_status_t. */
int kws_frontend_init(kws_frontend_t *fe, const kws_frontend_config_t *cfg);

/* Forget buffered samples (start of a new stream). Tables are kept. */
void kws_frontend_reset(kws_frontend_t *fe);

/* Append up to `count` int16 samples. Stops as soon as a frame is complete: then writes the
 * frame's num_features features to `features` and returns 1; otherwise returns 0 after taking
 * every sample. *consumed is the number of samples taken. Typical use:
 *     while (count > 0) {
 *         size_t used;
 *         if (kws_frontend_push_i16(&fe, pcm, count, &used, feats)) { ...new frame... }
 *         pcm += used; count -= used;
 *     }
 * Frame k covers stream samples [k * stride, k * stride + window), whatever the chunk sizes. */
int kws_frontend_push_i16(kws_frontend_t *fe, const int16_t *samples, size_t count, size_t *consumed,
                          float *features);

/* The same for float samples in [-1, 1] (int16 / 32768). */
int kws_frontend_push_f32(kws_frontend_t *fe, const float *samples, size_t count, size_t *consumed,
                          float *features);

/* Features of one already-cut frame of window_samples float samples (not streamed). */
void kws_frontend_compute(kws_frontend_t *fe, const float *frame, float *features);

/* int8 model input: out[i] = clamp(round_half_even(x[i] / scale) + zero_point, -128, 127),
 * with scale and zero_point from manifest.json models.int8.input (or the input tensor). */
void kws_quantize_int8(const float *x, size_t n, float scale, int32_t zero_point, int8_t *out);

/* A ring of the last num_frames quantized frames: the model's (num_frames, num_features) input. */
typedef struct {
    int8_t data[KWS_MAX_FRAMES * KWS_MAX_FEATURES];
    int num_frames;
    int num_features;
    int next;       /* row written by the next push */
    int count;      /* rows filled so far, up to num_frames */
} kws_feature_window_t;

int kws_feature_window_init(kws_feature_window_t *w, int num_frames, int num_features);
void kws_feature_window_push(kws_feature_window_t *w, const int8_t *frame);
/* 1 once num_frames frames have been pushed (the model needs a full window). */
int kws_feature_window_full(const kws_feature_window_t *w);
/* Copy the window oldest frame first into dst (num_frames * num_features bytes), e.g. the
 * TFLite Micro input tensor's data.int8. */
void kws_feature_window_copy(const kws_feature_window_t *w, int8_t *dst);

const char *kws_status_string(int status);

#ifdef __cplusplus
}
#endif

#endif /* KWS_FRONTEND_H */
