SUMMARY = "STB content server: operator CA, enrollment, licenses, live channels"
DESCRIPTION = "The operator's service: certificate authority, subscribers and packages, \
               an encrypt-once packager, licenses and live streaming over mutual TLS."
SECTION = "net"
CVE_PRODUCT = "stb-content-server"

require stb-common.inc

CARGO_SRC_DIR = "content-server"

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
