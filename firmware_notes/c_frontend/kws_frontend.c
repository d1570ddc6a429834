/* kws_frontend.c: see kws_frontend.h and firmware_notes/frontend_spec.md. */
#include "kws_frontend.h"

#include <math.h>
#include <string.h>

#define KWS_PI 3.14159265358979323846
#define MEL_BREAK_HZ 700.0
#define MEL_HIGH_Q 1127.0

static double hz_to_mel(double hz) { return MEL_HIGH_Q * log1p(hz / MEL_BREAK_HZ); }

kws_frontend_config_t kws_frontend_default_config(void)
{
    kws_frontend_config_t cfg;
    cfg.sample_rate = 16000;
    cfg.window_samples = 480;
    cfg.stride_samples = 160;
    cfg.fft_size = 512;
    cfg.feature_type = KWS_FEATURES_MFCC;
    cfg.num_mel_bins = 40;
    cfg.num_features = 40;
    cfg.lower_hz = 20.0;
    cfg.upper_hz = 7600.0;
    return cfg;
}

static int next_pow2(int n)
{
    int p = 1;
    while (p < n) {
        p <<= 1;
    }
    return p;
}

static int check_config(const kws_frontend_config_t *c, int fft_size)
{
    if (c->sample_rate <= 0 || c->window_samples <= 0 || c->stride_samples <= 0 ||
        c->stride_samples > c->window_samples || c->num_mel_bins < 1 || c->num_features < 1) {
        return KWS_ERR_CONFIG;
    }
    if (fft_size < c->window_samples || (fft_size & (fft_size - 1)) != 0 || fft_size < 4) {
        return KWS_ERR_CONFIG;
    }
    if (!(c->lower_hz >= 0.0 && c->lower_hz < c->upper_hz && c->upper_hz <= c->sample_rate / 2.0)) {
        return KWS_ERR_CONFIG;
    }
    if (c->feature_type == KWS_FEATURES_LOG_MEL && c->num_features != c->num_mel_bins) {
        return KWS_ERR_CONFIG;
    }
    if (c->feature_type == KWS_FEATURES_MFCC && c->num_features > c->num_mel_bins) {
        return KWS_ERR_CONFIG;
    }
    if (c->feature_type != KWS_FEATURES_MFCC && c->feature_type != KWS_FEATURES_LOG_MEL) {
        return KWS_ERR_CONFIG;
    }
    if (fft_size > KWS_MAX_FFT_SIZE || c->num_mel_bins > KWS_MAX_MEL_BINS ||
        c->num_features > KWS_MAX_FEATURES) {
        return KWS_ERR_CAPACITY;
    }
    return KWS_OK;
}

/* Triangular HTK mel filters, computed like kws.edge.frontend.mel_matrix (float64), stored
 * sparsely: per band the run of consecutive FFT bins with a non-zero weight. */
static int init_mel(kws_frontend_t *fe)
{
    const kws_frontend_config_t *c = &fe->cfg;
    const int nbins = fe->num_fft_bins;
    const int nmel = c->num_mel_bins;
    const double nyquist = c->sample_rate / 2.0;
    const double bin_step = nyquist / (nbins - 1);
    const double mel_lo = hz_to_mel(c->lower_hz);
    const double mel_hi = hz_to_mel(c->upper_hz);
    const double edge_step = (mel_hi - mel_lo) / (nmel + 1);
    int used = 0;
    int b, k;

    for (b = 0; b < nmel; b++) {
        /* edges as numpy.linspace(mel_lo, mel_hi, nmel + 2): start + i * step, last == stop */
        const double lower = mel_lo + b * edge_step;
        const double center = mel_lo + (b + 1) * edge_step;
        const double upper = (b + 2 == nmel + 1) ? mel_hi : mel_lo + (b + 2) * edge_step;
        fe->mel_first_bin[b] = 0;
        fe->mel_num_weights[b] = 0;
        fe->mel_weight_offset[b] = (int16_t)used;
        for (k = 1; k < nbins; k++) { /* bin 0 (DC) always has weight 0 */
            const double hz = (k == nbins - 1) ? nyquist : k * bin_step;
            const double m = hz_to_mel(hz);
            const double rising = (m - lower) / (center - lower);
            const double falling = (upper - m) / (upper - center);
            double w = rising < falling ? rising : falling;
            if (w <= 0.0) {
                if (fe->mel_num_weights[b] > 0) {
                    break; /* past the triangle */
                }
                continue;
            }
            if (used >= KWS_MAX_MEL_WEIGHTS) {
                return KWS_ERR_CAPACITY;
            }
            if (fe->mel_num_weights[b] == 0) {
                fe->mel_first_bin[b] = (int16_t)k;
            }
            fe->mel_weights[used++] = (float)w;
            fe->mel_num_weights[b]++;
        }
    }
    return KWS_OK;
}

int kws_frontend_init(kws_frontend_t *fe, const kws_frontend_config_t *cfg)
{
    int n, k, bits, status, fft_size, half;

    if (fe == NULL || cfg == NULL) {
        return KWS_ERR_NULL;
    }
    fft_size = cfg->fft_size > 0 ? cfg->fft_size : next_pow2(cfg->window_samples);
    status = check_config(cfg, fft_size);
    if (status != KWS_OK) {
        return status;
    }
    memset(fe, 0, sizeof(*fe));
    fe->cfg = *cfg;
    fe->cfg.fft_size = fft_size;
    fe->num_fft_bins = fft_size / 2 + 1;
    half = fft_size / 2;

    for (n = 0; n < cfg->window_samples; n++) {
        fe->window[n] = (float)(0.5 - 0.5 * cos(2.0 * KWS_PI * n / cfg->window_samples));
    }
    for (k = 0; k < half; k++) {
        fe->twiddle_re[k] = (float)cos(2.0 * KWS_PI * k / fft_size);
        fe->twiddle_im[k] = (float)-sin(2.0 * KWS_PI * k / fft_size);
    }
    for (bits = 0; (1 << bits) < half; bits++) {
    }
    for (k = 0; k < half; k++) {
        int r = 0, b;
        for (b = 0; b < bits; b++) {
            r |= ((k >> b) & 1) << (bits - 1 - b);
        }
        fe->bitrev[k] = (uint16_t)r;
    }
    status = init_mel(fe);
    if (status != KWS_OK) {
        return status;
    }
    if (cfg->feature_type == KWS_FEATURES_MFCC) {
        const int nin = cfg->num_mel_bins, nout = cfg->num_features;
        const double norm = sqrt(2.0 / nin);
        for (n = 0; n < nin; n++) {
            for (k = 0; k < nout; k++) {
                double v = cos(KWS_PI / nin * (n + 0.5) * k) * norm;
                if (k == 0) {
                    v *= 1.0 / sqrt(2.0);
                }
                fe->dct[n * nout + k] = (float)v;
            }
        }
    }
    return KWS_OK;
}

void kws_frontend_reset(kws_frontend_t *fe)
{
    fe->num_buffered = 0;
    fe->frames_emitted = 0;
}

/* In-place complex FFT of m = fft_size/2 points (re/im interleaved), radix-2 decimation in time. */
static void complex_fft(kws_frontend_t *fe, float *z)
{
    const int m = fe->cfg.fft_size / 2;
    int i, j, len;

    for (i = 0; i < m; i++) {
        j = fe->bitrev[i];
        if (j > i) {
            float t = z[2 * i];
            z[2 * i] = z[2 * j];
            z[2 * j] = t;
            t = z[2 * i + 1];
            z[2 * i + 1] = z[2 * j + 1];
            z[2 * j + 1] = t;
        }
    }
    for (len = 2; len <= m; len <<= 1) {
        const int h = len / 2;
        const int tw_step = 2 * (m / len); /* W_m^j = W_fft^(2j) */
        for (i = 0; i < m; i += len) {
            for (j = 0; j < h; j++) {
                const float wr = fe->twiddle_re[j * tw_step];
                const float wi = fe->twiddle_im[j * tw_step];
                float *a = &z[2 * (i + j)];
                float *b = &z[2 * (i + j + h)];
                const float tr = b[0] * wr - b[1] * wi;
                const float ti = b[0] * wi + b[1] * wr;
                b[0] = a[0] - tr;
                b[1] = a[1] - ti;
                a[0] += tr;
                a[1] += ti;
            }
        }
    }
}

/* Power spectrum |X[k]|^2, k = 0..fft_size/2, of the real signal packed in fe->fft
 * (x[2n] in re, x[2n+1] in im), via the usual split of an N/2 complex FFT. */
static void power_spectrum(kws_frontend_t *fe)
{
    const int m = fe->cfg.fft_size / 2;
    float *z = fe->fft;
    int k;

    complex_fft(fe, z);
    fe->power[0] = (z[0] + z[1]) * (z[0] + z[1]);
    fe->power[m] = (z[0] - z[1]) * (z[0] - z[1]);
    for (k = 1; k < m; k++) {
        const float ar = z[2 * k], ai = z[2 * k + 1];
        const float br = z[2 * (m - k)], bi = -z[2 * (m - k) + 1]; /* conj(Z[m-k]) */
        const float er = 0.5f * (ar + br), ei = 0.5f * (ai + bi);  /* even part */
        const float dr = 0.5f * (ar - br), di = 0.5f * (ai - bi);  /* (Z - conj) / 2 */
        /* odd part: -i * W^k * d */
        const float wr = fe->twiddle_re[k], wi = fe->twiddle_im[k];
        const float pr = dr * wr - di * wi, pi = dr * wi + di * wr;
        const float xr = er + pi, xi = ei - pr;
        fe->power[k] = xr * xr + xi * xi;
    }
}

void kws_frontend_compute(kws_frontend_t *fe, const float *frame, float *features)
{
    const kws_frontend_config_t *c = &fe->cfg;
    int n, b, k;

    memset(fe->fft, 0, sizeof(float) * (size_t)c->fft_size); /* zero padding */
    for (n = 0; n < c->window_samples; n++) {
        fe->fft[n] = frame[n] * fe->window[n];
    }
    power_spectrum(fe);
    for (b = 0; b < c->num_mel_bins; b++) {
        const float *w = &fe->mel_weights[fe->mel_weight_offset[b]];
        const float *p = &fe->power[fe->mel_first_bin[b]];
        float acc = 0.0f;
        for (k = 0; k < fe->mel_num_weights[b]; k++) {
            acc += w[k] * p[k];
        }
        fe->log_mel[b] = logf(acc + KWS_LOG_OFFSET);
    }
    if (c->feature_type == KWS_FEATURES_LOG_MEL) {
        memcpy(features, fe->log_mel, sizeof(float) * (size_t)c->num_mel_bins);
        return;
    }
    for (k = 0; k < c->num_features; k++) {
        float acc = 0.0f;
        for (n = 0; n < c->num_mel_bins; n++) {
            acc += fe->log_mel[n] * fe->dct[n * c->num_features + k];
        }
        features[k] = acc;
    }
}

/* A full frame is buffered: compute it, then keep the last window - stride samples. */
static void emit_frame(kws_frontend_t *fe, float *features)
{
    const int keep = fe->cfg.window_samples - fe->cfg.stride_samples;
    kws_frontend_compute(fe, fe->samples, features);
    memmove(fe->samples, fe->samples + fe->cfg.stride_samples, sizeof(float) * (size_t)keep);
    fe->num_buffered = keep;
    fe->frames_emitted++;
}

int kws_frontend_push_i16(kws_frontend_t *fe, const int16_t *samples, size_t count, size_t *consumed,
                          float *features)
{
    size_t used = 0;
    while (used < count) {
        fe->samples[fe->num_buffered++] = (float)samples[used++] / KWS_INT16_SCALE;
        if (fe->num_buffered == fe->cfg.window_samples) {
            emit_frame(fe, features);
            *consumed = used;
            return 1;
        }
    }
    *consumed = used;
    return 0;
}

int kws_frontend_push_f32(kws_frontend_t *fe, const float *samples, size_t count, size_t *consumed,
                          float *features)
{
    size_t used = 0;
    while (used < count) {
        fe->samples[fe->num_buffered++] = samples[used++];
        if (fe->num_buffered == fe->cfg.window_samples) {
            emit_frame(fe, features);
            *consumed = used;
            return 1;
        }
    }
    *consumed = used;
    return 0;
}

void kws_quantize_int8(const float *x, size_t n, float scale, int32_t zero_point, int8_t *out)
{
    size_t i;
    const float zp = (float)zero_point;
    for (i = 0; i < n; i++) {
        /* rintf rounds half to even in the default rounding mode, like numpy.round */
        float q = rintf(x[i] / scale) + zp;
        if (q < -128.0f) {
            q = -128.0f;
        } else if (q > 127.0f) {
            q = 127.0f;
        }
        out[i] = (int8_t)q;
    }
}

int kws_feature_window_init(kws_feature_window_t *w, int num_frames, int num_features)
{
    if (w == NULL) {
        return KWS_ERR_NULL;
    }
    if (num_frames < 1 || num_features < 1) {
        return KWS_ERR_CONFIG;
    }
    if (num_frames > KWS_MAX_FRAMES || num_features > KWS_MAX_FEATURES) {
        return KWS_ERR_CAPACITY;
    }
    memset(w, 0, sizeof(*w));
    w->num_frames = num_frames;
    w->num_features = num_features;
    return KWS_OK;
}

void kws_feature_window_push(kws_feature_window_t *w, const int8_t *frame)
{
    memcpy(&w->data[w->next * w->num_features], frame, (size_t)w->num_features);
    w->next = (w->next + 1) % w->num_frames;
    if (w->count < w->num_frames) {
        w->count++;
    }
}

int kws_feature_window_full(const kws_feature_window_t *w) { return w->count == w->num_frames; }

void kws_feature_window_copy(const kws_feature_window_t *w, int8_t *dst)
{
    /* oldest row: `next` once full, row 0 before */
    const int start = w->count == w->num_frames ? w->next : 0;
    const size_t row = (size_t)w->num_features;
    const size_t tail = (size_t)(w->count - start > 0 ? w->count - start : 0);
    memcpy(dst, &w->data[(size_t)start * row], tail * row);
    memcpy(dst + tail * row, w->data, (size_t)start * row);
}

const char *kws_status_string(int status)
{
    switch (status) {
    case KWS_OK:
        return "ok";
    case KWS_ERR_NULL:
        return "NULL argument";
    case KWS_ERR_CONFIG:
        return "inconsistent frontend config";
    case KWS_ERR_CAPACITY:
        return "config exceeds KWS_MAX_* capacity (rebuild with larger -DKWS_MAX_...)";
    default:
        return "unknown status";
    }
}
