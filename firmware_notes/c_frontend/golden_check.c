/*
 * golden_check: run the C frontend over one golden case and compare with the numpy output.
 *
 *   golden_check CASE.txt [--chunk N]    e.g. golden_check ../golden/chirp.mfcc.txt --chunk 37
 *   golden_check --sizes                 bytes of the frontend's static structs
 *
 * CASE.txt is written by firmware_notes/golden/make_golden.py ("key value" lines); the files it
 * names are read from the same folder. The PCM is streamed through kws_frontend_push_i16 in
 * chunks of N samples (default 160), each frame is quantized with the case's scale/zero_point
 * and pushed into a kws_feature_window_t, and the window is compared at the end too.
 * Exit status 0 when the float error is within --max-rel (default 1e-3) of the feature range
 * and every int8 value is within --max-step (default 1) steps.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kws_frontend.h"

#define MAX_SAMPLES (16000 * 10)
#define MAX_CHECK_FRAMES 1024
#define MAX_PATH 1024

static int16_t g_pcm[MAX_SAMPLES];
static float g_expected[MAX_CHECK_FRAMES * KWS_MAX_FEATURES];
static int8_t g_expected_q[MAX_CHECK_FRAMES * KWS_MAX_FEATURES];
static kws_frontend_t g_frontend;
static kws_feature_window_t g_window;
static int8_t g_window_copy[KWS_MAX_FRAMES * KWS_MAX_FEATURES];

typedef struct {
    kws_frontend_config_t cfg;
    long num_samples;
    long num_frames;
    float scale;
    int zero_point;
    char pcm[MAX_PATH];
    char features[MAX_PATH];
    char int8[MAX_PATH];
} golden_case_t;

/* dst = dir + name, or "" when it does not fit MAX_PATH. */
static void join_path(char *dst, const char *dir, const char *name)
{
    const size_t a = strlen(dir), b = strlen(name);
    if (a + b + 1 > MAX_PATH) {
        dst[0] = '\0';
        return;
    }
    memcpy(dst, dir, a);
    memcpy(dst + a, name, b + 1);
}

static int read_case(const char *path, golden_case_t *gc)
{
    char line[MAX_PATH + 64], key[64], value[MAX_PATH];
    char dir[MAX_PATH];
    const char *slash = strrchr(path, '/');
    FILE *f = fopen(path, "r");
    size_t dlen = slash ? (size_t)(slash - path + 1) : 0;

    if (f == NULL) {
        fprintf(stderr, "%s: cannot open\n", path);
        return -1;
    }
    if (dlen >= sizeof(dir)) {
        fclose(f);
        return -1;
    }
    memcpy(dir, path, dlen);
    dir[dlen] = '\0';
    memset(gc, 0, sizeof(*gc));
    gc->cfg = kws_frontend_default_config();
    gc->cfg.fft_size = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (line[0] == '#' || sscanf(line, "%63s %1023s", key, value) != 2) {
            continue;
        }
        if (strcmp(key, "sample_rate") == 0) gc->cfg.sample_rate = atoi(value);
        else if (strcmp(key, "window_samples") == 0) gc->cfg.window_samples = atoi(value);
        else if (strcmp(key, "stride_samples") == 0) gc->cfg.stride_samples = atoi(value);
        else if (strcmp(key, "fft_size") == 0) gc->cfg.fft_size = atoi(value);
        else if (strcmp(key, "num_mel_bins") == 0) gc->cfg.num_mel_bins = atoi(value);
        else if (strcmp(key, "num_features") == 0) gc->cfg.num_features = atoi(value);
        else if (strcmp(key, "lower_hz") == 0) gc->cfg.lower_hz = strtod(value, NULL);
        else if (strcmp(key, "upper_hz") == 0) gc->cfg.upper_hz = strtod(value, NULL);
        else if (strcmp(key, "num_samples") == 0) gc->num_samples = atol(value);
        else if (strcmp(key, "num_frames") == 0) gc->num_frames = atol(value);
        else if (strcmp(key, "scale") == 0) gc->scale = strtof(value, NULL);
        else if (strcmp(key, "zero_point") == 0) gc->zero_point = atoi(value);
        else if (strcmp(key, "feature_type") == 0) {
            if (strcmp(value, "mfcc") == 0) gc->cfg.feature_type = KWS_FEATURES_MFCC;
            else if (strcmp(value, "log_mel") == 0) gc->cfg.feature_type = KWS_FEATURES_LOG_MEL;
            else {
                fprintf(stderr, "%s: unknown feature_type %s\n", path, value);
                fclose(f);
                return -1;
            }
        } else if (strcmp(key, "pcm") == 0) join_path(gc->pcm, dir, value);
        else if (strcmp(key, "features") == 0) join_path(gc->features, dir, value);
        else if (strcmp(key, "int8") == 0) join_path(gc->int8, dir, value);
    }
    fclose(f);
    if (gc->num_samples <= 0 || gc->num_samples > MAX_SAMPLES || gc->num_frames <= 0 ||
        gc->num_frames > MAX_CHECK_FRAMES || gc->scale <= 0.0f || !gc->pcm[0] || !gc->features[0] ||
        !gc->int8[0]) {
        fprintf(stderr, "%s: incomplete case or larger than this checker's buffers\n", path);
        return -1;
    }
    return 0;
}

/* Read exactly `bytes` bytes; the golden files are little-endian, as is every host this runs on
 * (a big-endian host would have to swap bytes here). */
static int read_blob(const char *path, void *dst, size_t bytes)
{
    FILE *f = fopen(path, "rb");
    size_t got;
    if (f == NULL) {
        fprintf(stderr, "%s: cannot open\n", path);
        return -1;
    }
    got = fread(dst, 1, bytes, f);
    fclose(f);
    if (got != bytes) {
        fprintf(stderr, "%s: expected %lu bytes, read %lu\n", path, (unsigned long)bytes, (unsigned long)got);
        return -1;
    }
    return 0;
}

static int print_sizes(void)
{
    printf("sizeof(kws_frontend_t) %lu\n", (unsigned long)sizeof(kws_frontend_t));
    printf("sizeof(kws_feature_window_t) %lu\n", (unsigned long)sizeof(kws_feature_window_t));
    printf("KWS_MAX_FFT_SIZE %d KWS_MAX_MEL_BINS %d KWS_MAX_FEATURES %d KWS_MAX_FRAMES %d\n",
           KWS_MAX_FFT_SIZE, KWS_MAX_MEL_BINS, KWS_MAX_FEATURES, KWS_MAX_FRAMES);
    return 0;
}

int main(int argc, char **argv)
{
    golden_case_t gc;
    const char *case_path = NULL;
    long chunk = 160, pos = 0, frames = 0, i;
    double max_rel = 1e-3, max_abs = 0.0, lo = 1e30, hi = -1e30, rel;
    int max_step = 1, worst_step = 0, worst_window_step = 0, mismatches = 0, status, a, nf;
    float feats[KWS_MAX_FEATURES];
    int8_t q[KWS_MAX_FEATURES];

    for (a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--sizes") == 0) return print_sizes();
        else if (strcmp(argv[a], "--chunk") == 0 && a + 1 < argc) chunk = atol(argv[++a]);
        else if (strcmp(argv[a], "--max-rel") == 0 && a + 1 < argc) max_rel = atof(argv[++a]);
        else if (strcmp(argv[a], "--max-step") == 0 && a + 1 < argc) max_step = atoi(argv[++a]);
        else if (argv[a][0] != '-' && case_path == NULL) case_path = argv[a];
        else {
            fprintf(stderr, "usage: %s CASE.txt [--chunk N] [--max-rel R] [--max-step S] | --sizes\n", argv[0]);
            return 2;
        }
    }
    if (case_path == NULL || chunk < 1) {
        fprintf(stderr, "usage: %s CASE.txt [--chunk N] [--max-rel R] [--max-step S] | --sizes\n", argv[0]);
        return 2;
    }
    if (read_case(case_path, &gc) != 0) return 2;
    nf = gc.cfg.num_features;
    if (read_blob(gc.pcm, g_pcm, sizeof(int16_t) * (size_t)gc.num_samples) != 0 ||
        read_blob(gc.features, g_expected, sizeof(float) * (size_t)(gc.num_frames * nf)) != 0 ||
        read_blob(gc.int8, g_expected_q, (size_t)(gc.num_frames * nf)) != 0) {
        return 2;
    }
    status = kws_frontend_init(&g_frontend, &gc.cfg);
    if (status != KWS_OK) {
        fprintf(stderr, "%s: kws_frontend_init: %s\n", case_path, kws_status_string(status));
        return 2;
    }
    status = kws_feature_window_init(&g_window, (int)(gc.num_frames < KWS_MAX_FRAMES ? gc.num_frames : KWS_MAX_FRAMES), nf);
    if (status != KWS_OK) {
        fprintf(stderr, "%s: kws_feature_window_init: %s\n", case_path, kws_status_string(status));
        return 2;
    }

    while (pos < gc.num_samples) {
        long n = gc.num_samples - pos < chunk ? gc.num_samples - pos : chunk;
        const int16_t *p = &g_pcm[pos];
        pos += n;
        while (n > 0) {
            size_t used;
            if (kws_frontend_push_i16(&g_frontend, p, (size_t)n, &used, feats)) {
                if (frames >= gc.num_frames) {
                    fprintf(stderr, "more frames than the golden case holds (%ld)\n", gc.num_frames);
                    return 1;
                }
                kws_quantize_int8(feats, (size_t)nf, gc.scale, gc.zero_point, q);
                kws_feature_window_push(&g_window, q);
                for (i = 0; i < nf; i++) {
                    const float e = g_expected[frames * nf + i];
                    const double err = fabs((double)feats[i] - (double)e);
                    const int step = abs((int)q[i] - (int)g_expected_q[frames * nf + i]);
                    if (err > max_abs) max_abs = err;
                    if (e < lo) lo = e;
                    if (e > hi) hi = e;
                    if (step > worst_step) worst_step = step;
                    if (step != 0) mismatches++;
                }
                frames++;
            }
            p += used;
            n -= (long)used;
        }
    }
    if (frames != gc.num_frames) {
        fprintf(stderr, "got %ld frames, the golden case has %ld\n", frames, gc.num_frames);
        return 1;
    }
    /* the ring holds the last g_window.num_frames frames, oldest first */
    kws_feature_window_copy(&g_window, g_window_copy);
    for (i = 0; i < (long)g_window.num_frames * nf; i++) {
        const long golden_i = (gc.num_frames - g_window.num_frames) * nf + i;
        const int step = abs((int)g_window_copy[i] - (int)g_expected_q[golden_i]);
        if (step > worst_window_step) worst_window_step = step;
    }
    rel = max_abs / (hi - lo > 0.0 ? hi - lo : 1.0);
    printf("case %s frames %ld features %d chunk %ld\n", case_path, frames, nf, chunk);
    printf("max_abs_error %.3g\n", max_abs);
    printf("feature_range %.6g\n", hi - lo);
    printf("max_rel_error %.3g\n", rel);
    printf("int8_max_step %d\n", worst_step);
    printf("int8_mismatches %d of %ld\n", mismatches, frames * nf);
    printf("window_int8_max_step %d\n", worst_window_step);
    if (rel > max_rel || worst_step > max_step || worst_window_step > max_step) {
        printf("FAIL\n");
        return 1;
    }
    printf("PASS\n");
    return 0;
}
