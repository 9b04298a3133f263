SUMMARY = "STB content server: operator CA, enrollment, licenses, live channels"
DESCRIPTION = "The operator's service: certificate authority, subscribers and packages, \
               an encrypt-once packager, licenses and live streaming over mutual TLS."
SECTION = "net"
CVE_PRODUCT = "stb-content-server"

# The servers link no GPL code: the workspace's own licence.
LICENSE = "Apache-2.0 | MIT"
# nooelint: oelint.var.licenseremotefile - the repository has no licence text of its own yet
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10 \
                    file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

require stb-common.inc

CARGO_SRC_DIR = "content-server"
STB_BINARIES = "content-server content-load"

# Live inputs are read by GStreamer (LGPL-2.1+, dynamically linked).
DEPENDS += "glib-2.0 gstreamer1.0 gstreamer1.0-plugins-base pkgconfig-native"
RDEPENDS:${PN} += "gstreamer1.0-plugins-base-app \
                   gstreamer1.0-plugins-good-rtp \
                   gstreamer1.0-plugins-good-rtpmanager \
                   gstreamer1.0-plugins-good-soup \
                   gstreamer1.0-plugins-good-udp"
# SRT inputs need plugins-bad built with PACKAGECONFIG "srt" (meta-oe's libsrt).
RRECOMMENDS:${PN} += "gstreamer1.0-plugins-bad-srt"

inherit systemd useradd

USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --no-create-home --home-dir /nonexistent --shell /bin/false --user-group content-server"

SYSTEMD_SERVICE:${PN} = "content-server.service"

CONFFILES:${PN} = "${sysconfdir}/content-server/config.toml"

do_install:append() {
    install -d ${D}${systemd_system_unitdir} ${D}${sysconfdir}/content-server ${D}${datadir}/content-server/fixtures
    install -m 0644 ${S}/packaging/debian/content-server/content-server.service ${D}${systemd_system_unitdir}/
    install -m 0644 ${S}/packaging/debian/content-server/config.toml ${D}${sysconfdir}/content-server/
    install -m 0644 ${S}/media-fixtures/channels.toml ${S}/media-fixtures/*.ts ${D}${datadir}/content-server/fixtures/
}
