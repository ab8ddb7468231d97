// C interface of facedetect.cc: dlib's HOG and MMOD CNN face detectors and
// its shape predictor.
#ifndef BORDERMATCH_FACEDETECT_H
#define BORDERMATCH_FACEDETECT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fdshapes fdshapes;
typedef struct fddetector fddetector;

// fdshapes_load reads a dlib shape predictor (68 or 5 points). Predicting
// only reads it, so detectors on several threads may share one. On failure
// it returns NULL and sets *err (free it with free()).
fdshapes* fdshapes_load(const char* path, char** err);
int fdshapes_points(const fdshapes* s);
void fdshapes_free(fdshapes* s);

// fddetector_new makes a HOG detector and, if cnn_path is not NULL, loads
// the MMOD CNN detector. One detector is for one thread at a time.
fddetector* fddetector_new(const char* cnn_path, char** err);
void fddetector_free(fddetector* d);

// fddetect finds faces in an 8-bit image of 1 (grey) or 3 (RGB) channels,
// rows stride bytes apart, upsampled upsample times first, with the HOG
// detector (cnn = 0) or the CNN one (cnn = 1), and places the shape
// predictor's points on each. It writes at most max faces: boxes (left,
// top, right, bottom), scores (0 at the detector's threshold) and points
// (x, y per point, fdshapes_points per face), all in the input's pixels.
// It returns how many faces it found, which may be more than max, or -1
// and sets *err.
int fddetect(fddetector* d, const fdshapes* s, const uint8_t* pix, int w, int h, int stride, int channels,
             int cnn, int upsample, int max, double* boxes, double* scores, double* points, char** err);

#ifdef __cplusplus
}
#endif

#endif
