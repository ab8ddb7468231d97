#!/usr/bin/python3
"""A loopback RTSP server for the capture tests: GStreamer's rtsp-server
(Debian: gir1.2-gst-rtsp-server-1.0, python3-gi, gstreamer1.0-plugins-good,
-bad, -ugly) streaming a looped sequence of PNG frames as H.264 (x264enc).

usage: rtsp_server.py PORT PATTERN FPS    (PORT 0: any free port)
Prints "ready PORT" once it listens; the stream is rtsp://127.0.0.1:PORT/gate.
"""
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main():
    port, pattern, fps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( multifilesrc location={pattern} loop=true caps=image/png,framerate={fps}/1 "
        "! pngdec ! videoconvert ! video/x-raw,format=I420 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} "
        "! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory("/gate", factory)
    if server.attach(None) == 0:
        print("cannot listen on port", port, file=sys.stderr, flush=True)
        sys.exit(1)
    print("ready", server.get_bound_port(), flush=True)
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    loop.run()


if __name__ == "__main__":
    main()
