// C interface of detect.cc: dlib's face detectors (HOG and the MMOD CNN) and
// its 68-point shape predictor, and dlib's own face chip, for the Go
// extractor, which aligns and describes the faces itself.
#ifndef BORDERMATCH_DETECT_H
#define BORDERMATCH_DETECT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ffshapes ffshapes;
typedef struct ffdetector ffdetector;

#define FF_POINTS 68

// ffface is one detection: the box, the detector's confidence (HOG: the SVM
// margin; CNN: the MMOD score; both 0 at the default threshold) and the
// shape predictor's 68 points (x0, y0, x1, y1, ...) in image pixels.
typedef struct {
    long left, top, right, bottom;
    double confidence;
    long points[2 * FF_POINTS];
} ffface;

// ffshapes_load reads a 68-point shape predictor. It is safe to share
// between threads. On failure it returns NULL and sets *err (free()).
ffshapes* ffshapes_load(const char* path, char** err);
void ffshapes_free(ffshapes* s);

// ffdetector_new makes a HOG detector and, if cnn_path is not NULL, loads
// the MMOD CNN detector. Not safe for concurrent use.
ffdetector* ffdetector_new(const char* cnn_path, char** err);
void ffdetector_free(ffdetector* d);

// ffdetect finds faces in an RGB image (w*h*3 bytes, row major) with the
// HOG detector (cnn = 0) or the CNN one (cnn = 1), on the image upsampled
// by 2 when upsample is set, and places the 68 points on each. It writes at
// most max faces to out and returns how many it found (which may be more
// than max), or -1 and sets *err.
int ffdetect(ffdetector* d, const ffshapes* s, const uint8_t* rgb, int w, int h,
             int cnn, int upsample, ffface* out, int max, char** err);

// ffdlibchip cuts dlib's 150x150 face chip (get_face_chip_details with
// padding 0.25, as dlib's face recognition network expects) from an RGB
// image, given the 68 points of the face. It returns 0, or -1 and sets *err.
int ffdlibchip(const uint8_t* rgb, int w, int h, const long* points, uint8_t* out, char** err);

#ifdef __cplusplus
}
#endif

#endif
