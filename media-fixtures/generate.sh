#!/usr/bin/env bash
# Generates the test channels: 640x360 H.264 (main profile, 1 s GOP, SPS/PPS before every IDR)
# with AAC stereo sound (English; channel 3 also a French track), muxed as MPEG-TS, each visibly different (test pattern, channel number
# and name drawn on the picture, a running clock) and audibly different (tone frequency).
# Channel 3 also carries DVB subtitles in English and French, written by stb-app's
# `dvb_subtitles` example (built with cargo) while the channel is muxed.
# Usage: media-fixtures/generate.sh [OUTPUT_DIR]   (default: this directory)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
mkdir -p "$out"
seconds=24
fps=25
frames=$((seconds * fps))
audio_buffers=$((seconds * 48000 / 1024 + 1))

# number|name|pattern|tone (Hz)|a second sound track's tone (Hz), in French|subtitles
channels=(
  "1|News 24|smpte|440||"
  "2|Sport Live|ball|523||"
  "3|Cinema Classics|pinwheel|659|330|en fr"
  "4|Kids Cartoons|gamut|784||"
)

# One AAC track for mpegtsmux `mux`, its language in the PMT (ISO 639 descriptor).
sound() { # tone language
  echo "audiotestsrc num-buffers=$audio_buffers samplesperbuffer=1024 freq=$1 volume=0.2" \
    "! audio/x-raw,rate=48000,channels=2 ! audioconvert ! voaacenc bitrate=96000 ! aacparse" \
    "! taginject tags=language-code=$2 ! queue ! mux."
}

# A pipeline with subtitle sources runs in the example that feeds them; others in gst-launch.
run() { # gst-launch description
  if [[ $1 == *appsrc* ]]; then
    cargo run -q --manifest-path "$here/../Cargo.toml" -p stb-app --example dvb_subtitles -- "$1"
  else
    eval "gst-launch-1.0 -q -e $1"
  fi
}

for line in "${channels[@]}"; do
  IFS='|' read -r number name pattern tone second subtitles <<<"$line"
  file="$out/ch$number.ts"
  tracks="$(sound "$tone" en)"
  if [ -n "$second" ]; then
    tracks="$tracks $(sound "$second" fr)"
  fi
  for language in $subtitles; do
    tracks="$tracks appsrc name=subtitles-$language ! taginject tags=language-code=$language ! queue ! mux."
  done
  run "videotestsrc num-buffers=$frames pattern=$pattern \
    ! video/x-raw,width=640,height=360,framerate=$fps/1 \
    ! textoverlay text=\"CH $number  $name\" font-desc=\"Sans Bold 28\" valignment=top halignment=left shaded-background=true \
    ! timeoverlay valignment=bottom halignment=right font-desc=\"Sans 24\" shaded-background=true \
    ! x264enc tune=zerolatency speed-preset=veryfast bitrate=500 key-int-max=$fps \
    ! video/x-h264,profile=main ! h264parse config-interval=-1 ! queue \
    ! mpegtsmux name=mux alignment=7 ! filesink location=\"$file\" \
    $tracks"
  echo "$file: $(stat -c %s "$file") bytes"
done

# The slate a live channel shows while its input is lost: the same format, 2 s, silent.
slate="$out/slate.ts"
gst-launch-1.0 -q -e \
  videotestsrc num-buffers=$((2 * fps)) pattern=black \
  ! video/x-raw,width=640,height=360,framerate=$fps/1 \
  ! textoverlay text="No signal" font-desc="Sans Bold 40" valignment=center halignment=center \
  ! textoverlay text="This channel will be back shortly" font-desc="Sans 20" valignment=bottom halignment=center \
  ! x264enc tune=zerolatency speed-preset=veryfast bitrate=200 key-int-max=$fps \
  ! video/x-h264,profile=main ! h264parse config-interval=-1 ! queue \
  ! mpegtsmux name=mux alignment=7 ! filesink location="$slate" \
  audiotestsrc num-buffers=$((2 * 48000 / 1024 + 1)) samplesperbuffer=1024 wave=silence \
  ! audio/x-raw,rate=48000,channels=2 ! audioconvert ! voaacenc bitrate=96000 ! aacparse \
  ! queue ! mux.
echo "$slate: $(stat -c %s "$slate") bytes"
