// dlib's face detectors and shape predictor, called from detect.go.
#include <dlib/dnn.h>
#include <dlib/image_processing.h>
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/image_transforms.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <vector>

#include "detect.h"

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

matrix<rgb_pixel> toMatrix(const uint8_t* rgb, int w, int h) {
    matrix<rgb_pixel> img(h, w);
    for (long r = 0; r < h; r++)
        for (long c = 0; c < w; c++) {
            const uint8_t* p = rgb + (r * w + c) * 3;
            img(r, c) = rgb_pixel(p[0], p[1], p[2]);
        }
    return img;
}

}  // namespace

struct ffshapes {
    shape_predictor sp;
};

struct ffdetector {
    frontal_face_detector hog = get_frontal_face_detector();
    mmod_net cnn;
    bool hasCNN = false;
};

extern "C" ffshapes* ffshapes_load(const char* path, char** err) {
    try {
        ffshapes* s = new ffshapes;
        try {
            deserialize(path) >> s->sp;
        } catch (...) {
            delete s;
            throw;
        }
        if (s->sp.num_parts() != FF_POINTS) {
            delete s;
            *err = dup("the shape predictor does not give 68 points");
            return nullptr;
        }
        return s;
    } catch (std::exception& e) {
        *err = dup(e.what());
    } catch (...) {
        *err = dup("unknown error");
    }
    return nullptr;
}

extern "C" void ffshapes_free(ffshapes* s) { delete s; }

extern "C" ffdetector* ffdetector_new(const char* cnn_path, char** err) {
    try {
        ffdetector* d = new ffdetector;
        if (cnn_path != nullptr) {
            try {
                deserialize(cnn_path) >> d->cnn;
            } catch (...) {
                delete d;
                throw;
            }
            d->hasCNN = true;
        }
        return d;
    } catch (std::exception& e) {
        *err = dup(e.what());
    } catch (...) {
        *err = dup("unknown error");
    }
    return nullptr;
}

extern "C" void ffdetector_free(ffdetector* d) { delete d; }

extern "C" int ffdetect(ffdetector* d, const ffshapes* s, const uint8_t* rgb, int w, int h,
                        int cnn, int upsample, ffface* out, int max, char** err) {
    try {
        if (cnn && !d->hasCNN) {
            *err = dup("no CNN detector loaded");
            return -1;
        }
        matrix<rgb_pixel> img = toMatrix(rgb, w, h);
        matrix<rgb_pixel> up;
        const matrix<rgb_pixel>* search = &img;
        double k = 1;
        if (upsample) {
            pyramid_up(img, up, pyramid_down<2>());
            search = &up;
            k = double(img.nc()) / double(up.nc());
        }
        std::vector<std::pair<rectangle, double>> found;
        if (cnn) {
            for (auto& m : d->cnn(*search)) found.push_back({m.rect, m.detection_confidence});
        } else {
            std::vector<rect_detection> dets;
            d->hog(*search, dets);
            for (auto& r : dets) found.push_back({r.rect, r.detection_confidence});
        }
        int n = 0;
        for (auto& f : found) {
            if (n >= max) break;
            rectangle r = f.first;
            if (upsample) {
                r = rectangle(long(r.left() * k + 0.5), long(r.top() * k + 0.5), long(r.right() * k + 0.5),
                              long(r.bottom() * k + 0.5));
            }
            full_object_detection shape = s->sp(img, r);
            ffface& o = out[n++];
            o.left = r.left();
            o.top = r.top();
            o.right = r.right();
            o.bottom = r.bottom();
            o.confidence = f.second;
            for (unsigned long i = 0; i < FF_POINTS; i++) {
                o.points[2 * i] = shape.part(i).x();
                o.points[2 * i + 1] = shape.part(i).y();
            }
        }
        return int(found.size());
    } catch (std::exception& e) {
        *err = dup(e.what());
    } catch (...) {
        *err = dup("unknown error");
    }
    return -1;
}

extern "C" int ffdlibchip(const uint8_t* rgb, int w, int h, const long* points, uint8_t* out, char** err) {
    try {
        matrix<rgb_pixel> img = toMatrix(rgb, w, h);
        std::vector<point> parts(FF_POINTS);
        long l = points[0], t = points[1], r = points[0], b = points[1];
        for (int i = 0; i < FF_POINTS; i++) {
            parts[i] = point(points[2 * i], points[2 * i + 1]);
            l = std::min(l, parts[i].x());
            r = std::max(r, parts[i].x());
            t = std::min(t, parts[i].y());
            b = std::max(b, parts[i].y());
        }
        full_object_detection shape(rectangle(l, t, r, b), parts);
        matrix<rgb_pixel> chip;
        extract_image_chip(img, get_face_chip_details(shape, 150, 0.25), chip);
        for (long y = 0; y < 150; y++)
            for (long x = 0; x < 150; x++) {
                uint8_t* p = out + (y * 150 + x) * 3;
                p[0] = chip(y, x).red;
                p[1] = chip(y, x).green;
                p[2] = chip(y, x).blue;
            }
        return 0;
    } catch (std::exception& e) {
        *err = dup(e.what());
    } catch (...) {
        *err = dup("unknown error");
    }
    return -1;
}
