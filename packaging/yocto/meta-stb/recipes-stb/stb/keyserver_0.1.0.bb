SUMMARY = "STB key server: sealed subscriber keys, EKE recovery, guess limits, audit"
DESCRIPTION = "Stores each subscriber's personal data sealed under a password-derived key and \
               answers one-round-trip EKE recoveries without learning the password."
SECTION = "net"
CVE_PRODUCT = "stb-keyserver"

# The servers link no GPL code: the workspace's own licence.
LICENSE = "Apache-2.0 | MIT"
# nooelint: oelint.var.licenseremotefile - the repository has no licence text of its own yet
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10 \
                    file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302"

require stb-common.inc

CARGO_SRC_DIR = "keyserver"
STB_BINARIES = "keyserver keyserver-load"

inherit systemd useradd

USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --no-create-home --home-dir /nonexistent --shell /bin/false --user-group keyserver"

SYSTEMD_SERVICE:${PN} = "keyserver.service"

CONFFILES:${PN} = "${sysconfdir}/keyserver/config.toml"

do_install:append() {
    install -d ${D}${systemd_system_unitdir} ${D}${sysconfdir}/keyserver
    install -m 0644 ${S}/packaging/debian/keyserver/keyserver.service ${D}${systemd_system_unitdir}/
    install -m 0644 ${S}/packaging/debian/keyserver/config.toml ${D}${sysconfdir}/keyserver/
}

# The key-encryption key is per machine and never in the image: made at first boot, root-only,
# and handed to the service by the unit (LoadCredential=kek:/etc/keyserver/kek.key).
# nooelint: oelint.task.docstrings - a package script, not a task
pkg_postinst_ontarget:${PN}() {
    if [ ! -e ${sysconfdir}/keyserver/kek.key ]; then
        ${bindir}/keyserver kek new --out ${sysconfdir}/keyserver/kek.key >/dev/null
    fi
}
