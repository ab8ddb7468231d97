#include <opencv2/core.hpp>
#include <opencv2/videoio.hpp>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "vcap.h"

struct vcap {
	cv::VideoCapture cap;
};

static char* dupstr(const std::string& s) {
	char* p = static_cast<char*>(std::malloc(s.size() + 1));
	if (p) std::memcpy(p, s.c_str(), s.size() + 1);
	return p;
}

vcap* vcap_open(const char* uri, int api, int open_timeout_ms, int read_timeout_ms, char** err) {
	vcap* c = new vcap;
	try {
		std::vector<int> params;
		if (open_timeout_ms > 0) {
			params.push_back(cv::CAP_PROP_OPEN_TIMEOUT_MSEC);
			params.push_back(open_timeout_ms);
		}
		if (read_timeout_ms > 0) {
			params.push_back(cv::CAP_PROP_READ_TIMEOUT_MSEC);
			params.push_back(read_timeout_ms);
		}
		if (!c->cap.open(uri, api, params) || !c->cap.isOpened()) {
			*err = dupstr("the backend could not open it");
			delete c;
			return nullptr;
		}
	} catch (const std::exception& e) {
		*err = dupstr(e.what());
		delete c;
		return nullptr;
	}
	return c;
}

int vcap_read(vcap* c, void* mat, char** err) {
	try {
		return c->cap.read(*static_cast<cv::Mat*>(mat)) ? 1 : 0;
	} catch (const std::exception& e) {
		*err = dupstr(e.what());
		return -1;
	}
}

double vcap_get(vcap* c, int prop) {
	try {
		return c->cap.get(prop);
	} catch (...) {
		return 0;
	}
}

int vcap_set(vcap* c, int prop, double value) {
	try {
		return c->cap.set(prop, value) ? 1 : 0;
	} catch (...) {
		return 0;
	}
}

void vcap_close(vcap* c) {
	if (!c) return;
	try {
		c->cap.release();
	} catch (...) {
	}
	delete c;
}
