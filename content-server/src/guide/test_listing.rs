//! An XMLTV listing for the test channels: days of plausible programmes by genre, made the same
//! way every time for the same day (so rewriting it changes nothing already shown), written
//! where the operator's guide would be. An operator with a real feed turns it off.

use std::fmt::Write as _;
use std::path::Path;

/// Genres a test channel can have, with what they broadcast.
pub const GENRES: [&str; 6] = ["news", "sport", "cinema", "kids", "documentary", "music"];

/// A test channel to list.
#[derive(Debug, Clone)]
pub struct TestChannel {
    /// XMLTV id.
    pub id: String,
    /// Name shown by guides.
    pub name: String,
    /// One of [`GENRES`].
    pub genre: String,
}

/// A show of a genre: title, length in minutes, category, rating, synopsis.
type Show = (
    &'static str,
    i64,
    &'static str,
    Option<&'static str>,
    &'static str,
);

fn shows(genre: &str) -> &'static [Show] {
    match genre {
        "news" => &[
            (
                "World Headlines",
                30,
                "News",
                None,
                "The main stories from around the world.",
            ),
            (
                "Business Today",
                30,
                "News",
                None,
                "Markets, companies and the economy.",
            ),
            (
                "Weather and Traffic",
                15,
                "News",
                None,
                "The forecast and the roads.",
            ),
            (
                "Evening Debate",
                60,
                "Current affairs",
                None,
                "Guests argue the question of the day.",
            ),
            (
                "Science Desk",
                30,
                "News",
                None,
                "Research news, explained.",
            ),
            (
                "Regional Roundup",
                45,
                "News",
                None,
                "What happened near you today.",
            ),
        ],
        "sport" => &[
            (
                "Match of the Day",
                90,
                "Sports",
                None,
                "The goals and the talking points.",
            ),
            (
                "Tennis: Live",
                120,
                "Sports",
                None,
                "Live from the centre court.",
            ),
            (
                "Cycling Highlights",
                60,
                "Sports",
                None,
                "The stage, climb by climb.",
            ),
            (
                "Sport Tonight",
                30,
                "Sports",
                None,
                "Results and interviews.",
            ),
            (
                "Athletics Classics",
                60,
                "Sports",
                None,
                "Great races from the archive.",
            ),
        ],
        "cinema" => &[
            (
                "The Silent Harbour",
                110,
                "Movie",
                Some("12"),
                "A lighthouse keeper finds a stranger on the rocks.",
            ),
            (
                "Night Train to Lisbon",
                130,
                "Movie",
                Some("12"),
                "A teacher leaves everything for a book.",
            ),
            (
                "The Long Summer",
                95,
                "Movie",
                Some("U"),
                "Three friends, one last holiday.",
            ),
            (
                "Cold Streets",
                120,
                "Movie",
                Some("16"),
                "A detective on her last case.",
            ),
            (
                "Behind the Screen",
                30,
                "Magazine",
                None,
                "Interviews from the set.",
            ),
        ],
        "kids" => &[
            (
                "Morning Cartoons",
                60,
                "Children",
                Some("U"),
                "Cartoons to start the day.",
            ),
            (
                "Puppet Theatre",
                30,
                "Children",
                Some("U"),
                "The puppets put on a play.",
            ),
            (
                "Science for Kids",
                30,
                "Children",
                Some("U"),
                "Experiments to try at home.",
            ),
            (
                "Animal Friends",
                25,
                "Children",
                Some("U"),
                "A visit to the farm.",
            ),
            ("Story Time", 15, "Children", Some("U"), "A bedtime story."),
        ],
        "documentary" => &[
            (
                "Planet Oceans",
                60,
                "Documentary",
                None,
                "Life below the waves.",
            ),
            (
                "Great Railways",
                60,
                "Documentary",
                None,
                "Journeys across continents.",
            ),
            (
                "Ancient Cities",
                50,
                "Documentary",
                None,
                "What the ruins tell us.",
            ),
            (
                "Inside the Factory",
                45,
                "Documentary",
                None,
                "How everyday things are made.",
            ),
        ],
        _ => &[
            ("Top 40", 60, "Music", None, "The week's chart."),
            (
                "Live Session",
                45,
                "Music",
                None,
                "A band plays live in the studio.",
            ),
            ("Classics Hour", 60, "Music", None, "Orchestral favourites."),
            (
                "Night Mix",
                120,
                "Music",
                None,
                "Non-stop music until morning.",
            ),
        ],
    }
}

/// A small mixing function: the same channel and day always give the same sequence of shows.
/// Not a secret and not cryptography, only variety.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// An XMLTV time in UTC (`YYYYMMDDhhmmss +0000`).
pub fn xmltv_time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(|t| {
            format!(
                "{:04}{:02}{:02}{:02}{:02}{:02} +0000",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_default()
}

const DAY_MS: i64 = 86_400_000;

/// The listing from the UTC midnight before `from_ms` to the end of the day `days` later.
pub fn render(channels: &[TestChannel], from_ms: i64, days: u32) -> String {
    let esc = |s: &str| quick_xml::escape::escape(s).into_owned();
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<tv generator-info-name=\"content-server test listing\">\n",
    );
    for c in channels {
        let _ = writeln!(
            out,
            "  <channel id=\"{}\"><display-name>{}</display-name></channel>",
            esc(&c.id),
            esc(&c.name)
        );
    }
    let first_day = from_ms.div_euclid(DAY_MS);
    for c in channels {
        let seed = c.id.bytes().fold(0u64, |h, b| mix(h ^ u64::from(b)));
        let shows = shows(&c.genre);
        for day in first_day..=first_day + i64::from(days) {
            let mut state = mix(seed ^ day as u64);
            let (mut start, end) = (day * DAY_MS, (day + 1) * DAY_MS);
            while start < end {
                state = mix(state);
                let (title, minutes, category, rating, desc) =
                    shows[(state % shows.len() as u64) as usize];
                let stop = (start + minutes * 60_000).min(end);
                let _ = write!(
                    out,
                    "  <programme start=\"{}\" stop=\"{}\" channel=\"{}\">\n    <title lang=\"en\">{}</title>\n    <desc lang=\"en\">{}</desc>\n    <category lang=\"en\">{}</category>\n",
                    xmltv_time(start),
                    xmltv_time(stop),
                    esc(&c.id),
                    esc(title),
                    esc(desc),
                    esc(category),
                );
                if let Some(r) = rating {
                    let _ = writeln!(
                        out,
                        "    <rating system=\"BBFC\"><value>{r}</value></rating>"
                    );
                }
                out.push_str("  </programme>\n");
                start = stop;
            }
        }
    }
    out.push_str("</tv>\n");
    out
}

/// Writes the listing to `path` whole (a temporary file renamed over it), so the server that
/// re-reads the guide never sees half of one.
pub fn write(path: &Path, channels: &[TestChannel], now_ms: i64, days: u32) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    // The listing starts the day before, so a box's guide can look back at what just ended.
    file.write_all(render(channels, now_ms - DAY_MS, days + 1).as_bytes())?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guide::xmltv;

    #[test]
    fn the_listing_covers_every_day_and_imports() {
        let channels: Vec<TestChannel> = GENRES
            .iter()
            .enumerate()
            .map(|(i, g)| TestChannel {
                id: format!("ch{i}.test"),
                name: format!("{g} & co"),
                genre: (*g).into(),
            })
            .collect();
        let ids = channels
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i as u16))
            .collect();
        let day = 20_000 * DAY_MS;
        let text = render(&channels, day + 5_000, 7);
        let listings = xmltv::parse(&text, &ids).expect("imports");
        assert_eq!(listings.len(), GENRES.len());
        for list in listings.values() {
            assert_eq!(list.first().map(|p| p.start_ms), Some(day));
            assert_eq!(list.last().map(|p| p.end_ms), Some(day + 8 * DAY_MS));
            assert!(
                list.windows(2).all(|w| w[0].end_ms == w[1].start_ms),
                "no gap"
            );
            assert!(
                list.iter()
                    .all(|p| p.description.is_some() && !p.categories.is_empty())
            );
        }
        assert!(
            listings[&2].iter().any(|p| p.rating.is_some()),
            "films are rated"
        );
        assert_eq!(
            render(&channels, day + 7_000_000, 7),
            text,
            "the same days give the same listing"
        );
    }

    #[test]
    fn writing_replaces_the_file_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("guide.xml");
        std::fs::write(&path, "old").expect("write");
        let channel = TestChannel {
            id: "a".into(),
            name: "A".into(),
            genre: "music".into(),
        };
        write(&path, &[channel], 0, 1).expect("written");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("<?xml") && text.ends_with("</tv>\n"));
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            1,
            "no temporary left"
        );
    }
}
