#!/usr/bin/env bash
# Prints the Debian mirror this machine's apt uses for the main archive (not the security
# archive), so scripts that debootstrap a root use the same mirror or cache as apt does.
# STB_DEBIAN_MIRROR overrides it. Reads deb822 `.sources` files and one-line `sources.list`.
set -euo pipefail
if [ -n "${STB_DEBIAN_MIRROR:-}" ]; then
  echo "$STB_DEBIAN_MIRROR"
  exit 0
fi
uri=$(
  {
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      # One stanza per paragraph: print the first URI of a stanza with Types deb whose
      # suites do not end in -security.
      awk 'BEGIN{RS=""; FS="\n"}
        { t=""; u=""; s="";
          for (i = 1; i <= NF; i++) {
            if ($i ~ /^Types:/) t=$i; if ($i ~ /^URIs:/) u=$i; if ($i ~ /^Suites:/) s=$i }
          if (t ~ /(^|[ \t])deb([ \t]|$)/ && s !~ /-security/ && u != "") {
            sub(/^URIs:[ \t]*/, "", u); split(u, a, /[ \t]+/); print a[1] } }' "$f"
    done
    { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } |
      awk '$1 == "deb" && $0 !~ /-security/ { for (i = 2; i <= NF; i++) if ($i !~ /^\[/) { print $i; break } }'
  } | head -1 || true
)
[ -n "$uri" ] || { echo "no Debian mirror in apt's sources; set STB_DEBIAN_MIRROR or pass --mirror" >&2; exit 1; }
echo "${uri%/}"
