//! XMLTV import: the `<programme>` elements of a `<tv>` document, for the channels whose XMLTV
//! id the manifest maps to a number. Every middleware and grabber speaks this format.
//!
//! A file is taken whole or not at all: one programme with a bad time refuses the file (with
//! its line), so the operator fixes the feed rather than boxes showing half a guide.

use super::Listings;
use stb_protocol::content_api::Programme;
use std::collections::HashMap;

/// Why a file was refused.
#[derive(Debug, thiserror::Error)]
pub enum XmltvError {
    /// Not XML, or more than the node limit.
    #[error("not well-formed XML: {0}")]
    Xml(#[from] roxmltree::Error),
    /// Some other XML document.
    #[error("the root element is <{0}>, not <tv>")]
    Root(String),
    /// A programme the guide cannot place.
    #[error("line {line}: {what}")]
    Programme {
        /// Line of the `<programme>` element.
        line: u32,
        /// What is wrong with it.
        what: String,
    },
}

/// Upper bound on the elements of one file: a week of 1,000 channels at ~20 elements per
/// programme is well under it, and it caps what a hostile file can make the server build.
const NODES_LIMIT: u32 = 20_000_000;

/// Parses `text`; `ids` maps XMLTV channel ids to channel numbers (programmes of other channels
/// are skipped). Programmes come back sorted, without overlaps: a programme without `stop` ends
/// where the next one starts, one that runs into the next is cut there, and of two with the same
/// start the first is kept.
pub fn parse(text: &str, ids: &HashMap<String, u16>) -> Result<Listings, XmltvError> {
    let options = roxmltree::ParsingOptions {
        // XMLTV files usually name their DTD; entities stay bounded by the node limit.
        allow_dtd: true,
        nodes_limit: NODES_LIMIT,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, options)?;
    let root = doc.root_element();
    if root.tag_name().name() != "tv" {
        return Err(XmltvError::Root(root.tag_name().name().to_owned()));
    }
    // (programme, whether its stop was given) per channel, in file order.
    let mut raw: HashMap<u16, Vec<(Programme, bool)>> = HashMap::new();
    for node in root.children().filter(|n| n.has_tag_name("programme")) {
        // The line is found only for an error: finding it scans the text from its start.
        let refuse = |what: String| XmltvError::Programme {
            line: doc.text_pos_at(node.range().start).row,
            what,
        };
        let Some(number) = node.attribute("channel").and_then(|id| ids.get(id)) else {
            continue;
        };
        let start = node
            .attribute("start")
            .ok_or_else(|| refuse("no start time".into()))?;
        let start_ms = time_ms(start).map_err(|e| refuse(format!("start {start:?}: {e}")))?;
        let end_ms = match node.attribute("stop") {
            Some(stop) => {
                let end = time_ms(stop).map_err(|e| refuse(format!("stop {stop:?}: {e}")))?;
                if end <= start_ms {
                    return Err(refuse(format!(
                        "stop {stop:?} is not after start {start:?}"
                    )));
                }
                Some(end)
            }
            None => None,
        };
        let text_of = |tag: &str| {
            node.children()
                .find(|n| n.has_tag_name(tag))
                .and_then(|n| n.text())
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
        };
        let title = text_of("title").ok_or_else(|| refuse("no title".into()))?;
        let categories = node
            .children()
            .filter(|n| n.has_tag_name("category"))
            .filter_map(|n| n.text().map(str::trim))
            .filter(|t| !t.is_empty())
            .fold(Vec::<String>::new(), |mut all, c| {
                // The same genre in several languages is one genre to a viewer.
                if !all.iter().any(|a| a == c) {
                    all.push(c.to_owned());
                }
                all
            });
        let rating = node
            .children()
            .find(|n| n.has_tag_name("rating"))
            .and_then(|r| r.children().find(|n| n.has_tag_name("value")))
            .and_then(|v| v.text())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        let programme = Programme {
            title,
            start_ms,
            end_ms: end_ms.unwrap_or(start_ms),
            subtitle: text_of("sub-title"),
            description: text_of("desc"),
            categories,
            rating,
        };
        raw.entry(*number)
            .or_default()
            .push((programme, end_ms.is_some()));
    }
    Ok(raw
        .into_iter()
        .map(|(number, list)| (number, place(list)))
        .collect())
}

/// Sorts one channel's programmes and makes them follow each other without overlap.
fn place(mut list: Vec<(Programme, bool)>) -> Vec<Programme> {
    // Stable: of two programmes with the same start, the first in the file comes first.
    list.sort_by_key(|(p, _)| p.start_ms);
    list.dedup_by_key(|(p, _)| p.start_ms);
    let next_starts: Vec<Option<i64>> = list
        .iter()
        .skip(1)
        .map(|(p, _)| Some(p.start_ms))
        .chain([None])
        .collect();
    list.into_iter()
        .zip(next_starts)
        .filter_map(|((mut p, has_stop), next_start)| {
            match (has_stop, next_start) {
                (true, Some(next)) => p.end_ms = p.end_ms.min(next),
                (true, None) => {}
                (false, Some(next)) => p.end_ms = next,
                // The last programme without a stop has no known end: it is left out.
                (false, None) => return None,
            }
            Some(p)
        })
        .collect()
}

/// An XMLTV time: `YYYYMMDDhhmmss` (seconds, or minutes and seconds, may be left out) and an
/// optional `+hhmm`/`-hhmm` offset; without one the time is UTC.
fn time_ms(text: &str) -> Result<i64, &'static str> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if !(10..=14).contains(&digits) || digits % 2 != 0 {
        return Err("not YYYYMMDDhh[mm[ss]]");
    }
    let (stamp, rest) = text.split_at(digits);
    let field = |from: usize, len: usize| -> i32 {
        stamp
            .get(from..from + len)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    let month = u8::try_from(field(4, 2))
        .ok()
        .and_then(|m| time::Month::try_from(m).ok())
        .ok_or("no such month")?;
    let date = time::Date::from_calendar_date(field(0, 4), month, field(6, 2) as u8)
        .map_err(|_| "no such date")?;
    let clock = time::Time::from_hms(field(8, 2) as u8, field(10, 2) as u8, field(12, 2) as u8)
        .map_err(|_| "no such time of day")?;
    let offset_secs = match rest.trim() {
        "" | "Z" | "UTC" | "GMT" => 0,
        zone => {
            let (sign, hhmm) = match zone.as_bytes().first() {
                Some(b'+') => (1, &zone[1..]),
                Some(b'-') => (-1, &zone[1..]),
                _ => return Err("the offset is not +hhmm or -hhmm"),
            };
            if hhmm.len() != 4 || !hhmm.bytes().all(|b| b.is_ascii_digit()) {
                return Err("the offset is not +hhmm or -hhmm");
            }
            let (h, m): (i64, i64) = (
                hhmm[..2].parse().unwrap_or(0),
                hhmm[2..].parse().unwrap_or(0),
            );
            if h > 23 || m > 59 {
                return Err("the offset is out of range");
            }
            sign * (h * 3600 + m * 60)
        }
    };
    let utc = time::PrimitiveDateTime::new(date, clock).assume_utc();
    Ok((utc.unix_timestamp() - offset_secs) * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> HashMap<String, u16> {
        [("one.test".to_owned(), 1), ("two.test".to_owned(), 2)].into()
    }

    const UTC_2026_11_29: i64 = 1_795_910_400_000;

    #[test]
    fn times_with_and_without_offsets() {
        assert_eq!(time_ms("20261129000000 +0000"), Ok(UTC_2026_11_29));
        assert_eq!(time_ms("20261129"), Err("not YYYYMMDDhh[mm[ss]]"));
        assert_eq!(time_ms("2026112901"), Ok(UTC_2026_11_29 + 3_600_000));
        assert_eq!(time_ms("202611290130 +0130"), Ok(UTC_2026_11_29));
        assert_eq!(
            time_ms("20261128230000 -0100"),
            Ok(UTC_2026_11_29),
            "west of UTC"
        );
        assert_eq!(time_ms("20261329000000"), Err("no such month"));
        assert_eq!(time_ms("20261131000000"), Err("no such date"));
        assert_eq!(time_ms("20261129250000"), Err("no such time of day"));
        assert_eq!(
            time_ms("20261129000000 CET"),
            Err("the offset is not +hhmm or -hhmm")
        );
    }

    #[test]
    fn a_listing_is_placed_on_the_clock() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE tv SYSTEM "xmltv.dtd">
<tv generator-info-name="test">
  <channel id="one.test"><display-name>One</display-name></channel>
  <programme start="20261129010000 +0000" channel="one.test">
    <title lang="fr">Le Journal</title><title lang="en">The News</title>
    <sub-title>Morning</sub-title>
    <desc lang="fr">Les titres &amp; la météo.</desc>
    <category lang="fr">Info</category><category lang="en">News</category><category>Info</category>
    <rating system="CSA"><value>-10</value></rating>
  </programme>
  <programme start="20261129000000 +0000" stop="20261129013000 +0000" channel="one.test">
    <title>Night</title>
  </programme>
  <programme start="20261129000000 +0000" stop="20261129003000 +0000" channel="one.test">
    <title>Same start, later in the file</title>
  </programme>
  <programme start="20261129020000 +0000" stop="20261129030000 +0000" channel="one.test">
    <title>Last</title>
  </programme>
  <programme start="20261129020000 +0000" channel="elsewhere.test"><title>Not ours</title></programme>
  <programme start="20261129020000 +0000" channel="two.test"><title>No end known</title></programme>
</tv>"#;
        let listings = parse(xml, &ids()).expect("parsed");
        let one = &listings[&1];
        let hour = 3_600_000;
        let titles: Vec<_> = one
            .iter()
            .map(|p| (p.title.as_str(), p.start_ms, p.end_ms))
            .collect();
        assert_eq!(
            titles,
            [
                ("Night", UTC_2026_11_29, UTC_2026_11_29 + hour),
                (
                    "Le Journal",
                    UTC_2026_11_29 + hour,
                    UTC_2026_11_29 + 2 * hour
                ),
                ("Last", UTC_2026_11_29 + 2 * hour, UTC_2026_11_29 + 3 * hour),
            ],
            "sorted, the overlap cut, the missing stop taken from the next start"
        );
        let news = &one[1];
        assert_eq!(news.subtitle.as_deref(), Some("Morning"));
        assert_eq!(news.description.as_deref(), Some("Les titres & la météo."));
        assert_eq!(news.categories, ["Info", "News"]);
        assert_eq!(news.rating.as_deref(), Some("-10"));
        assert!(listings.get(&2).is_none_or(Vec::is_empty));
    }

    #[test]
    fn a_bad_programme_refuses_the_file_with_its_line() {
        let xml = "<tv>\n<programme start=\"20261129000000\" stop=\"20261129010000\" channel=\"one.test\"><title>Fine</title></programme>\n<programme start=\"2026-11-29\" channel=\"one.test\"><title>Bad</title></programme>\n</tv>";
        let e = parse(xml, &ids()).expect_err("refused");
        assert!(
            matches!(&e, XmltvError::Programme { line: 3, what } if what.contains("start")),
            "{e}"
        );
        let e = parse(
            "<tv><programme start=\"20261129010000\" stop=\"20261129000000\" channel=\"one.test\"><title>x</title></programme></tv>",
            &ids(),
        )
        .expect_err("stop before start");
        assert!(e.to_string().contains("not after start"), "{e}");
        let e = parse(
            "<tv><programme start=\"20261129010000\" channel=\"one.test\"/></tv>",
            &ids(),
        )
        .expect_err("no title");
        assert!(e.to_string().contains("no title"), "{e}");
        assert!(matches!(
            parse("<rss/>", &ids()),
            Err(XmltvError::Root(r)) if r == "rss"
        ));
        assert!(matches!(
            parse("<tv><programme>", &ids()),
            Err(XmltvError::Xml(_))
        ));
    }
}
