SUMMARY = "Set-top box image: minimal systemd system with GStreamer and stb-app"
DESCRIPTION = "Core image for the box (Raspberry Pi 4/5 class): systemd, GStreamer plugins \
               and the stb-app package; the box keeps no subscriber data."
HOMEPAGE = "https://example.org/stb"
BUGTRACKER = "https://example.org/stb/issues"
SECTION = "images"
CVE_PRODUCT = "stb-image"
LICENSE = "MIT"

IMAGE_FEATURES += "ssh-server-dropbear"
IMAGE_INSTALL += "ca-certificates stb-app"

# gstreamer1.0-libav (avdec_h264) carries the commercial license flag: accept it in local.conf
# (LICENSE_FLAGS_ACCEPTED += "commercial"), or rely on the Pi's v4l2 hardware decoder.

inherit core-image
