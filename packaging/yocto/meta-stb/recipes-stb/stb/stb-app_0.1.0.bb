SUMMARY = "STB set-top box: login by EKE, decrypting GStreamer player"
DESCRIPTION = "The box: a subscriber logs in with an identifier and a password on the remote, \
               the box recovers its keys from the key server and plays the subscribed channels."
SECTION = "multimedia"
CVE_PRODUCT = "stb-stb-app"

require stb-common.inc

DEPENDS += "fontconfig glib-2.0 gstreamer1.0 gstreamer1.0-plugins-base libinput libxkbcommon pkgconfig-native udev"

CARGO_SRC_DIR = "stb-app"

inherit systemd useradd

USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --no-create-home --home-dir /nonexistent --shell /bin/false --user-group --groups video,input,audio stb"

SYSTEMD_SERVICE:${PN} = "stb-app.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

CONFFILES:${PN} = "${sysconfdir}/stb-app/config.toml ${sysconfdir}/stb-app/keymap.toml"

RDEPENDS:${PN} += "gstreamer1.0-libav \
                   gstreamer1.0-plugins-bad-kms \
                   gstreamer1.0-plugins-bad-mpegtsdemux \
                   gstreamer1.0-plugins-bad-videoparsersbad \
                   gstreamer1.0-plugins-base-alsa \
                   gstreamer1.0-plugins-base-app \
                   gstreamer1.0-plugins-base-audioconvert \
                   gstreamer1.0-plugins-base-audioresample \
                   gstreamer1.0-plugins-base-videoconvertscale \
                   gstreamer1.0-plugins-good-audioparsers \
                   gstreamer1.0-plugins-good-video4linux2 \
                   ttf-dejavu-sans"

do_install:append() {
    install -d ${D}${systemd_system_unitdir} ${D}${sysconfdir}/stb-app
    install -m 0644 ${S}/packaging/debian/stb-app/stb-app.service ${D}${systemd_system_unitdir}/
    install -m 0644 ${S}/packaging/debian/stb-app/config.toml ${D}${sysconfdir}/stb-app/
    install -m 0644 ${S}/stb-app/keymap.toml ${D}${sysconfdir}/stb-app/
}
