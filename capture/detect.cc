#include <dlib/image_processing.h>
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/image_transforms.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "detect.h"

struct facemodel {
	dlib::shape_predictor sp;
	// Copied into each detector: deserialising dlib's built-in detector
	// takes about half a second, copying it a fraction of that.
	dlib::frontal_face_detector det;
};

// The shape predictor is only read while predicting (operator() is const),
// so detectors on several threads share one; the HOG detector keeps
// scratch state and each detector has its own copy.
struct facedet {
	dlib::frontal_face_detector det;
	const dlib::shape_predictor* sp;
	dlib::array2d<unsigned char> img;
	dlib::array2d<unsigned char> up;
};

static char* dupstr(const std::string& s) {
	char* p = static_cast<char*>(std::malloc(s.size() + 1));
	if (p) std::memcpy(p, s.c_str(), s.size() + 1);
	return p;
}

facemodel* facemodel_load(const char* sp_path, char** err) {
	try {
		facemodel* m = new facemodel;
		try {
			dlib::deserialize(sp_path) >> m->sp;
			m->det = dlib::get_frontal_face_detector();
		} catch (...) {
			delete m;
			throw;
		}
		return m;
	} catch (const std::exception& e) {
		*err = dupstr(e.what());
		return nullptr;
	}
}

int facemodel_points(const facemodel* m) { return static_cast<int>(m->sp.num_parts()); }

void facemodel_free(facemodel* m) { delete m; }

facedet* facedet_new(const facemodel* m, char** err) {
	try {
		facedet* d = new facedet;
		d->det = m->det;
		d->sp = &m->sp;
		return d;
	} catch (const std::exception& e) {
		*err = dupstr(e.what());
		return nullptr;
	}
}

int facedet_detect(facedet* d, const uint8_t* grey, int w, int h, int stride, int upsample, int max,
                   int* boxes, double* scores, double* points, char** err) {
	try {
		d->img.set_size(h, w);
		for (int y = 0; y < h; y++) {
			std::memcpy(&d->img[y][0], grey + static_cast<size_t>(y) * stride, w);
		}
		dlib::array2d<unsigned char>* in = &d->img;
		double scale = 1;
		for (int i = 0; i < upsample; i++) {
			dlib::pyramid_up(*in, d->up, dlib::pyramid_down<2>());
			dlib::swap(d->img, d->up);
			scale *= 2;
		}
		std::vector<dlib::rect_detection> dets;
		d->det(*in, dets, 0.0);
		int n = 0;
		const int np = static_cast<int>(d->sp->num_parts());
		for (const auto& rd : dets) {
			if (n >= max) break;
			const dlib::rectangle& r = rd.rect;
			dlib::full_object_detection shape = (*d->sp)(*in, r);
			boxes[4 * n + 0] = static_cast<int>(r.left() / scale);
			boxes[4 * n + 1] = static_cast<int>(r.top() / scale);
			boxes[4 * n + 2] = static_cast<int>(r.right() / scale);
			boxes[4 * n + 3] = static_cast<int>(r.bottom() / scale);
			scores[n] = rd.detection_confidence;
			for (int p = 0; p < np; p++) {
				points[2 * (n * np + p) + 0] = shape.part(p).x() / scale;
				points[2 * (n * np + p) + 1] = shape.part(p).y() / scale;
			}
			n++;
		}
		return n;
	} catch (const std::exception& e) {
		*err = dupstr(e.what());
		return -1;
	}
}

void facedet_free(facedet* d) { delete d; }
