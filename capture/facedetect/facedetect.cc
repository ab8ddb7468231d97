// dlib's face detectors and shape predictor, called from facedetect.go.
#include <dlib/dnn.h>
#include <dlib/image_processing.h>
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/image_transforms.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <vector>

#include "facedetect.h"

namespace {

using namespace dlib;

// The MMOD face detector's network, as dlib's dnn_mmod_face_detection_ex.cpp
// defines it for mmod_human_face_detector.dat.
template <long num_filters, typename SUBNET>
using con5d = con<num_filters, 5, 5, 2, 2, SUBNET>;
template <long num_filters, typename SUBNET>
using con5 = con<num_filters, 5, 5, 1, 1, SUBNET>;
template <typename SUBNET>
using downsampler = relu<affine<con5d<32, relu<affine<con5d<32, relu<affine<con5d<16, SUBNET>>>>>>>>>;
template <typename SUBNET>
using rcon5 = relu<affine<con5<45, SUBNET>>>;
using mmod_net = loss_mmod<con<1, 9, 9, 1, 1, rcon5<rcon5<rcon5<downsampler<input_rgb_image_pyramid<pyramid_down<6>>>>>>>>;

char* dup(const char* s) { return strdup(s); }

// hogPrototype is dlib's HOG detector, deserialised once (about half a
// second) and copied into every detector (a fraction of that).
const frontal_face_detector& hogPrototype() {
    static const frontal_face_detector d = get_frontal_face_detector();
    return d;
}

struct found {
    rectangle box;
    double score;
    full_object_detection shape;
};

// search runs a detector and the shape predictor on img, upsampled n times.
template <typename pixel>
std::vector<found> search(matrix<pixel>& img, int upsample, bool cnn, frontal_face_detector& hog, mmod_net& net,
                          const shape_predictor& sp, double& scale) {
    scale = 1;
    for (int i = 0; i < upsample; i++) {
        matrix<pixel> up;
        pyramid_up(img, up, pyramid_down<2>());
        img.swap(up);
        scale *= 2;
    }
    std::vector<found> out;
    if (cnn) {
        matrix<rgb_pixel> rgb;
        assign_image(rgb, img);
        for (auto& m : net(rgb)) out.push_back({m.rect, m.detection_confidence, sp(img, m.rect)});
    } else {
        std::vector<rect_detection> dets;
        hog(img, dets, 0.0);
        for (auto& r : dets) out.push_back({r.rect, r.detection_confidence, sp(img, r.rect)});
    }
    return out;
}

}  // namespace

struct fdshapes {
    shape_predictor sp;
};

struct fddetector {
    frontal_face_detector hog;
    mmod_net cnn;
    bool hasCNN = false;
};

extern "C" fdshapes* fdshapes_load(const char* path, char** err) {
    try {
        fdshapes* s = new fdshapes;
        try {
            deserialize(path) >> s->sp;
        } catch (...) {
            delete s;
            throw;
        }
        return s;
    } catch (std::exception& e) {
        *err = dup(e.what());
    } catch (...) {
        *err = dup("unknown error");
    }
    return nullptr;
}

extern "C" int fdshapes_points(const fdshapes* s) { return int(s->sp.num_parts()); }

extern "C" void fdshapes_free(fdshapes* s) { delete s; }

extern "C" fddetector* fddetector_new(const char* cnn_path, char** err) {
    try {
        fddetector* d = new fddetector;
        try {
            d->hog = hogPrototype();
            if (cnn_path != nullptr) {
                deserialize(cnn_path) >> d->cnn;
                d->hasCNN = true;
            }
        } catch (...) {
            delete d;
            throw;
        }
        return d;
    } catch (std::exception& e) {
        *err = dup(e.what());
    } catch (...) {
        *err = dup("unknown error");
    }
    return nullptr;
}

extern "C" void fddetector_free(fddetector* d) { delete d; }

extern "C" int fddetect(fddetector* d, const fdshapes* s, const uint8_t* pix, int w, int h, int stride, int channels,
                        int cnn, int upsample, int max, double* boxes, double* scores, double* points, char** err) {
    try {
        if (cnn && !d->hasCNN) {
            *err = dup("no CNN detector loaded");
            return -1;
        }
        std::vector<found> faces;
        double scale = 1;
        if (channels == 1) {
            matrix<unsigned char> img(h, w);
            for (long r = 0; r < h; r++) std::memcpy(&img(r, 0), pix + size_t(r) * stride, w);
            faces = search(img, upsample, cnn, d->hog, d->cnn, s->sp, scale);
        } else if (channels == 3) {
            matrix<rgb_pixel> img(h, w);
            for (long r = 0; r < h; r++)
                for (long c = 0; c < w; c++) {
                    const uint8_t* p = pix + size_t(r) * stride + size_t(c) * 3;
                    img(r, c) = rgb_pixel(p[0], p[1], p[2]);
                }
            faces = search(img, upsample, cnn, d->hog, d->cnn, s->sp, scale);
        } else {
            *err = dup("an image must have 1 or 3 channels");
            return -1;
        }
        const int np = int(s->sp.num_parts());
        for (int n = 0; n < int(faces.size()) && n < max; n++) {
            const found& f = faces[n];
            boxes[4 * n + 0] = f.box.left() / scale;
            boxes[4 * n + 1] = f.box.top() / scale;
            boxes[4 * n + 2] = (f.box.right() + 1) / scale;
            boxes[4 * n + 3] = (f.box.bottom() + 1) / scale;
            scores[n] = f.score;
            for (int p = 0; p < np; p++) {
                points[2 * (n * np + p) + 0] = f.shape.part(p).x() / scale;
                points[2 * (n * np + p) + 1] = f.shape.part(p).y() / scale;
            }
        }
        return int(faces.size());
    } catch (std::exception& e) {
        *err = dup(e.what());
    } catch (...) {
        *err = dup("unknown error");
    }
    return -1;
}
