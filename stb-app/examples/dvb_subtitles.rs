//! Feeds DVB subtitles (ETSI EN 300 743) into a test channel as it is muxed: run by
//! `media-fixtures/generate.sh` with the channel's gst-launch description, in which each
//! subtitle track is an `appsrc name=subtitles-LANG` linked to the muxer.
//!
//! Debian bookworm's `dvbsubenc` (GStreamer 1.22) writes objects that neither `dvbsuboverlay`
//! nor ffmpeg decodes whole, so the segments are written here: each cue's text is drawn by
//! GStreamer's `textrender` (Pango), reduced to eight levels of white over a translucent box
//! and coded as 8-bit pixel strings, both fields. A cue's display set is repeated every
//! second as an acquisition point with the same version (a box that tunes in mid-cue shows
//! it; one that has it skips the repeat), and an empty page ends it.
//!
//! Usage: `cargo run -p stb-app --example dvb_subtitles -- 'videotestsrc ! ... appsrc name=subtitles-en ! mux.'`

use anyhow::{Context, Result, bail};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

/// The test channels' picture: the display definition the pages are placed on.
const DISPLAY: (u16, u16) = (640, 360);
/// Seconds covered by each channel file (generate.sh's `seconds`).
const SECONDS: u64 = 24;
/// Space around the text inside its box, pixels (x, y).
const MARGIN: (usize, usize) = (10, 5);
/// The composition page (mpegtsmux announces page 1 in the PMT's subtitling descriptor).
const PAGE: u16 = 1;

/// (from s, to s, text) of each track, by language.
fn cues(language: &str) -> Option<&'static [(f64, f64, &'static str)]> {
    Some(match language {
        "en" => &[
            (1.0, 4.5, "Good evening, and welcome to the cinema."),
            (5.5, 9.0, "Tonight: a classic in black and white."),
            (10.0, 13.5, "Subtitles: English"),
            (14.5, 18.0, "Please keep your phone switched off."),
            (19.0, 22.5, "The film starts in a moment."),
        ],
        "fr" => &[
            (1.0, 4.5, "Bonsoir, et bienvenue au cinéma."),
            (5.5, 9.0, "Ce soir : un classique en noir et blanc."),
            (10.0, 13.5, "Sous-titres : français"),
            (14.5, 18.0, "Merci d'éteindre votre téléphone."),
            (19.0, 22.5, "Le film commence dans un instant."),
        ],
        _ => return None,
    })
}

/// A cue drawn: coverage of each pixel, 0 (box) to 7 (white).
struct Bitmap {
    width: u16,
    height: u16,
    levels: Vec<u8>,
}

/// Draws `text` with Pango through `textrender`: white on transparent, ARGB.
fn render(text: &str) -> Result<Bitmap> {
    // textrender reads Pango markup: these would need escaping.
    anyhow::ensure!(!text.contains(['<', '&']), "cue text with markup: {text:?}");
    let pipeline = gst::parse::launch(
        "appsrc name=text caps=text/x-raw,format=utf8 format=time \
         ! textrender font-desc=\"Sans Bold 15\" halignment=center valignment=top \
         ! video/x-raw,format=ARGB,width=620,height=80,framerate=1/1 ! appsink name=frame",
    )?
    .downcast::<gst::Pipeline>()
    .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let src = pipeline
        .by_name("text")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .context("appsrc")?;
    let sink = pipeline
        .by_name("frame")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .context("appsink")?;
    pipeline.set_state(gst::State::Playing)?;
    let mut buffer = gst::Buffer::from_slice(text.as_bytes().to_vec());
    {
        let b = buffer.get_mut().context("buffer")?;
        b.set_pts(gst::ClockTime::ZERO);
        b.set_duration(gst::ClockTime::SECOND);
    }
    src.push_buffer(buffer)?;
    src.end_of_stream()?;
    let sample = sink
        .try_pull_sample(gst::ClockTime::from_seconds(10))
        .context("textrender gave no picture")?;
    pipeline.set_state(gst::State::Null)?;
    let caps = sample.caps().context("caps")?;
    let s = caps.structure(0).context("caps")?;
    let (width, height) = (
        s.get::<i32>("width")? as usize,
        s.get::<i32>("height")? as usize,
    );
    let map = sample.buffer().context("buffer")?.map_readable()?;
    let stride = map.len() / height;
    // textrender draws white text with a black outline and shadow on transparency: white's
    // coverage is alpha times red (ARGB); the outline and the shadow become the box.
    let coverage = |x: usize, y: usize| {
        let argb = &map[y * stride + 4 * x..][..2];
        (u16::from(argb[0]) * u16::from(argb[1]) / 255) as u8
    };
    let inked = |x, y| coverage(x, y) > 0;
    let columns: Vec<usize> = (0..width)
        .filter(|&x| (0..height).any(|y| inked(x, y)))
        .collect();
    let rows: Vec<usize> = (0..height)
        .filter(|&y| (0..width).any(|x| inked(x, y)))
        .collect();
    let (Some(&left), Some(&right), Some(&top), Some(&bottom)) =
        (columns.first(), columns.last(), rows.first(), rows.last())
    else {
        bail!("textrender drew nothing for {text:?}");
    };
    // The box: the text's extent and a margin, clipped to the drawing.
    let (left, right) = (
        left.saturating_sub(MARGIN.0),
        (right + MARGIN.0).min(width - 1),
    );
    let (top, bottom) = (
        top.saturating_sub(MARGIN.1),
        (bottom + MARGIN.1).min(height - 1),
    );
    let levels = (top..=bottom)
        .flat_map(|y| (left..=right).map(move |x| (x, y)))
        .map(|(x, y)| ((u16::from(coverage(x, y)) * 7 + 127) / 255) as u8)
        .collect();
    Ok(Bitmap {
        width: (right + 1 - left) as u16,
        height: (bottom + 1 - top) as u16,
        levels,
    })
}

/// One segment: sync byte, type, page id, length, data.
fn segment(out: &mut Vec<u8>, kind: u8, data: &[u8]) {
    out.extend_from_slice(&[0x0f, kind]);
    out.extend_from_slice(&PAGE.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// CLUT entry ids: 1 + coverage level.
const FIRST_ENTRY: u8 = 1;

/// One line of pixels as an 8-bit pixel code string, then end of line. The box's colour at
/// the end of the line is left to the region's fill: a string that reaches the region's
/// right edge makes ffmpeg and GStreamer stop before its end code and take the rest of the
/// object for garbage (hence "Invalid object location" from `dvbsubenc`'s output).
fn code_line(out: &mut Vec<u8>, line: &[u8]) {
    let inked = line
        .iter()
        .rposition(|&level| level > 0)
        .map_or(0, |i| i + 1);
    let line = &line[..inked];
    out.push(0x12); // 8-bit/pixel code string
    let mut i = 0;
    while i < line.len() {
        let code = FIRST_ENTRY + line[i];
        let run = line[i..]
            .iter()
            .take_while(|&&l| l == line[i])
            .count()
            .min(127);
        if run >= 3 {
            out.extend_from_slice(&[0x00, 0x80 | run as u8, code]);
        } else {
            out.extend(std::iter::repeat_n(code, run));
        }
        i += run;
    }
    out.extend_from_slice(&[0x00, 0x00, 0xf0]); // end of string, end of object line
}

/// Page states: a new page described whole, or the same page again for decoders that tune
/// in (one that has this version already skips it).
const MODE_CHANGE: u8 = 0b10;
const ACQUISITION_POINT: u8 = 0b01;

/// The display set that shows `bitmap` (or clears the page when None).
fn display_set(version: u8, state: u8, cue: Option<(&Bitmap, u8)>) -> Vec<u8> {
    let mut pes = vec![0x20, 0x00]; // data identifier, subtitle stream
    let (w, h) = DISPLAY;
    // Every segment's version number, in the upper four bits of its byte.
    let v = (version & 0xf) << 4;
    let mut dds = vec![v];
    dds.extend_from_slice(&(w - 1).to_be_bytes());
    dds.extend_from_slice(&(h - 1).to_be_bytes());
    segment(&mut pes, 0x14, &dds);
    // Page: time-out (a cleared page's too: 0 makes dvbsuboverlay warn), version, state.
    let mut page = vec![1, v | state << 2];
    if let Some((bitmap, timeout)) = cue {
        page[0] = timeout;
        let x = (w - bitmap.width) / 2;
        // Centred, above the clock that the test channels draw in the bottom corner.
        let y = h * 8 / 10 - bitmap.height;
        page.extend_from_slice(&[0, 0]); // region 0
        page.extend_from_slice(&x.to_be_bytes());
        page.extend_from_slice(&y.to_be_bytes());
        segment(&mut pes, 0x10, &page);

        // Filled with the box's colour, which the lines leave out at their ends.
        let mut region = vec![0, v | 0b1000];
        region.extend_from_slice(&bitmap.width.to_be_bytes());
        region.extend_from_slice(&bitmap.height.to_be_bytes());
        // 8-bit compatibility and depth, CLUT 0, the box's code as fill.
        region.extend_from_slice(&[0b011 << 5 | 0b011 << 2, 0, FIRST_ENTRY, 0]);
        region.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // object 0, bitmap, at (0, 0)
        segment(&mut pes, 0x11, &region);

        let mut clut = vec![0, v];
        for level in 0..8u8 {
            let luma = 16 + (235 - 16) * u16::from(level) / 7;
            // The box lets a quarter of the picture through.
            let transparency = 0x40 * u16::from(7 - level) / 7;
            clut.extend_from_slice(&[
                FIRST_ENTRY + level,
                0b0010_0001, // 8-bit entry, full range
                luma as u8,
                128,
                128,
                transparency as u8,
            ]);
        }
        segment(&mut pes, 0x12, &clut);

        let rows = |parity: usize| {
            let mut field = Vec::new();
            for line in bitmap
                .levels
                .chunks(usize::from(bitmap.width))
                .skip(parity)
                .step_by(2)
            {
                code_line(&mut field, line);
            }
            field
        };
        let (top, bottom) = (rows(0), rows(1));
        let mut object = vec![0, 0, v]; // object 0, pixel coding
        object.extend_from_slice(&(top.len() as u16).to_be_bytes());
        object.extend_from_slice(&(bottom.len() as u16).to_be_bytes());
        object.extend_from_slice(&top);
        object.extend_from_slice(&bottom);
        if object.len() % 2 == 1 {
            object.push(0); // stuffing to a 16-bit boundary
        }
        segment(&mut pes, 0x13, &object);
    } else {
        segment(&mut pes, 0x10, &page);
    }
    segment(&mut pes, 0x80, &[]);
    pes.push(0xff); // end of PES data field
    pes
}

/// Every display set of a track, by time: each cue repeated every second, then cleared.
fn track(language: &str) -> Result<Vec<(gst::ClockTime, Vec<u8>)>> {
    let cues = cues(language).with_context(|| format!("no cues for language {language:?}"))?;
    let mut sets = Vec::new();
    let mut version = 0u8;
    for &(from, to, text) in cues {
        let bitmap = render(text)?;
        let timeout = (to - from).ceil() as u8 + 1;
        let mut at = from;
        let mut state = MODE_CHANGE;
        while at < to {
            sets.push((at, display_set(version, state, Some((&bitmap, timeout)))));
            state = ACQUISITION_POINT;
            at += 1.0;
        }
        version = (version + 1) % 16;
        sets.push((to, display_set(version, MODE_CHANGE, None)));
        version = (version + 1) % 16;
    }
    Ok(sets
        .into_iter()
        .map(|(s, set)| (gst::ClockTime::from_mseconds((s * 1000.0) as u64), set))
        .collect())
}

fn main() -> Result<()> {
    let description = std::env::args()
        .nth(1)
        .context("usage: dvb_subtitles 'GST-LAUNCH DESCRIPTION with appsrc name=subtitles-LANG'")?;
    gst::init()?;
    let pipeline = gst::parse::launch(&description)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
    let mut feeds = Vec::new();
    for element in pipeline.iterate_elements().into_iter().flatten() {
        let name = element.name();
        let Some(language) = name.strip_prefix("subtitles-") else {
            continue;
        };
        let src = element
            .clone()
            .downcast::<gst_app::AppSrc>()
            .map_err(|_| anyhow::anyhow!("{name} is not an appsrc"))?;
        src.set_caps(Some(&gst::Caps::new_empty_simple("subpicture/x-dvb")));
        src.set_format(gst::Format::Time);
        src.set_block(true);
        feeds.push((src, track(language)?));
    }
    if feeds.is_empty() {
        bail!("no appsrc named subtitles-LANG in the description");
    }
    pipeline.set_state(gst::State::Playing)?;
    for (src, sets) in feeds {
        std::thread::spawn(move || {
            for (pts, set) in sets {
                let mut buffer = gst::Buffer::from_slice(set);
                if let Some(b) = buffer.get_mut() {
                    b.set_pts(pts);
                }
                if src.push_buffer(buffer).is_err() {
                    return;
                }
            }
            let _ = src.end_of_stream();
        });
    }
    let bus = pipeline.bus().context("bus")?;
    let result = loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_seconds(SECONDS * 10)) else {
            break Err(anyhow::anyhow!("muxing did not finish"));
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(e) => break Err(anyhow::anyhow!("{}", e.error())),
            _ => {}
        }
    };
    pipeline.set_state(gst::State::Null)?;
    result
}
