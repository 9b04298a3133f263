SUMMARY = "STB set-top box: login by EKE, decrypting GStreamer player"
DESCRIPTION = "The box: a subscriber logs in with an identifier and a password on the remote, \
               the box recovers its keys from the key server and plays the subscribed channels."
SECTION = "multimedia"
CVE_PRODUCT = "stb-stb-app"

# stb-app links the Slint UI toolkit statically. Slint is offered under GPL-3.0-only, under a
# royalty-free licence that excludes embedded devices, or under a commercial licence: on a box
# that leaves GPL-3.0-only (the workspace's own Apache-2.0/MIT code is compatible with it), or
# the operator's commercial Slint licence, set by the operator's layer (a bbappend with its
# LICENSE and LIC_FILES_CHKSUM). The binary embeds the Roboto font (Apache-2.0), its licence
# text in stb-app/ui/fonts/.
LICENSE = "GPL-3.0-only & Apache-2.0"
# nooelint: oelint.var.licenseremotefile - the repository has no GPL licence text of its own yet
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/GPL-3.0-only;md5=c79ff39f19dfec6d293b95dea7b07891 \
                    file://stb-app/ui/fonts/LICENSE-Roboto.txt;md5=3b83ef96387f14655fc854ddc3c6bd57"

require stb-common.inc

DEPENDS += "fontconfig glib-2.0 gstreamer1.0 gstreamer1.0-plugins-base libinput libxkbcommon pkgconfig-native udev"

CARGO_SRC_DIR = "stb-app"
STB_BINARIES = "stb-app"

inherit systemd useradd

USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --no-create-home --home-dir /nonexistent --shell /bin/false --user-group --groups video,input,audio stb"

SYSTEMD_SERVICE:${PN} = "stb-app.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

CONFFILES:${PN} = "${sysconfdir}/stb-app/config.toml ${sysconfdir}/stb-app/keymap.toml"

# The pipeline (src/player.rs): tsdemux (mpegtsdemux), h264parse (videoparsersbad),
# v4l2h264dec (video4linux2) or avdec_h264 and avdec_aac (libav), aacparse (audioparsers),
# dvbsuboverlay (subtitles),
# videoconvert (videoconvertscale), audioconvert, audioresample, volume, appsrc/appsink (app),
# autoaudiosink (autodetect) over ALSA. No video sink: the UI takes the frames through appsink
# and draws them itself with Slint's linuxkms backend (kmssink serves only an explicit
# `stb-app headless --video-sink kmssink`; plugins-bad builds it with PACKAGECONFIG "kms").
# xkeyboard-config: the keymap that Slint's linuxkms backend compiles with libxkbcommon on the
# first key press.
RDEPENDS:${PN} += "gstreamer1.0-libav \
                   gstreamer1.0-plugins-bad-dvbsuboverlay \
                   gstreamer1.0-plugins-bad-mpegtsdemux \
                   gstreamer1.0-plugins-bad-videoparsersbad \
                   gstreamer1.0-plugins-base-alsa \
                   gstreamer1.0-plugins-base-app \
                   gstreamer1.0-plugins-base-audioconvert \
                   gstreamer1.0-plugins-base-audioresample \
                   gstreamer1.0-plugins-base-videoconvertscale \
                   gstreamer1.0-plugins-base-volume \
                   gstreamer1.0-plugins-good-audioparsers \
                   gstreamer1.0-plugins-good-autodetect \
                   gstreamer1.0-plugins-good-video4linux2 \
                   ttf-dejavu-sans \
                   xkeyboard-config"

do_install:append() {
    install -d ${D}${systemd_system_unitdir} ${D}${sysconfdir}/stb-app
    install -m 0644 ${S}/packaging/debian/stb-app/stb-app.service ${D}${systemd_system_unitdir}/
    install -m 0644 ${S}/packaging/debian/stb-app/config.toml ${D}${sysconfdir}/stb-app/
    install -m 0644 ${S}/stb-app/keymap.toml ${D}${sysconfdir}/stb-app/
}
