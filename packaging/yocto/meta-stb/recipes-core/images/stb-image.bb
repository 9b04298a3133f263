SUMMARY = "Set-top box image: minimal systemd system with GStreamer and stb-app"
DESCRIPTION = "Core image for the box (Raspberry Pi 4/5 class): systemd, GStreamer plugins \
               and the stb-app package; the box keeps no subscriber data."
HOMEPAGE = "https://example.org/stb"
BUGTRACKER = "https://example.org/stb/issues"
SECTION = "images"
CVE_PRODUCT = "stb-image"
# The image ships stb-app, which Slint makes GPL-3.0-only (or the operator's commercial Slint
# licence: change it here and in stb-app). Every package's own licence is listed in the
# image's license.manifest; the texts go into the image (COPY_LIC_*).
LICENSE = "GPL-3.0-only"

inherit core-image

IMAGE_FEATURES += "ssh-server-dropbear"
# :append, not +=: core-image sets IMAGE_INSTALL with ?= (packagegroup-core-boot,
# packagegroup-base-extended), which a value set before the inherit would replace.
IMAGE_INSTALL:append = " ca-certificates stb-app"

# GPL-3.0 asks that the licence texts go with the binaries: /usr/share/common-licenses.
COPY_LIC_MANIFEST = "1"
COPY_LIC_DIRS = "1"

# gstreamer1.0-libav and ffmpeg (avdec_h264, avdec_aac) carry the "commercial" licence flag:
# the kas file accepts it for those two recipes only.
