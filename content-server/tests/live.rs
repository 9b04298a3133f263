//! Live inputs, fed on loopback by GStreamer senders (UDP, RTP, SRT) and an HTTP server of
//! the test's own: the slate before the input and while it is lost, the input's segments
//! decoding once decrypted, sequence numbers without a gap across losses, and broken inputs
//! reported while the channel keeps airing the slate.
#![allow(missing_docs)]

mod common;

use common::{Box_, Operator, gst_decodes, operator_with, segment_key, stream_headers};
use content_server::catalogue::Source;
use content_server::routes::LiveEdge;
use content_server::ts::{InputStatus, Segment};
use stb_protocol::{License, SegmentCipher, SegmentHeader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn media(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../media-fixtures")
        .join(name)
}

fn slate() -> Vec<Segment> {
    content_server::ts::segment(&std::fs::read(media("slate.ts")).expect("slate")).expect("slate")
}

fn free_port(udp: bool) -> u16 {
    let addr = if udp {
        std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr())
    } else {
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|s| s.local_addr())
    };
    addr.expect("a free port").port()
}

/// A server with looped channel 1 and a live channel per input (numbers 11, 12, ...), all in
/// the "basic" package.
async fn operator_with_inputs(inputs: &[String]) -> Operator {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let mut manifest = format!(
        "slate = {:?}\n\n[[channel]]\nnumber = 1\nname = \"Looped\"\nfile = {:?}\npackages = [\"basic\"]\n",
        media("slate.ts").display().to_string(),
        media("ch1.ts").display().to_string(),
    );
    for (i, input) in inputs.iter().enumerate() {
        manifest += &format!(
            "\n[[channel]]\nnumber = {}\nname = \"Live {i}\"\ninput = {input:?}\npackages = [\"basic\"]\n",
            11 + i
        );
    }
    let path = dir.join("channels.toml");
    std::fs::write(&path, manifest).expect("manifest");
    operator_with(None, |c| {
        c.channels = path;
        c.input_loss_ms = 1000;
    })
    .await
}

/// A GStreamer sender: a live test picture in H.264, muxed as TS, sent by `sink`.
struct Sender(Child);

impl Sender {
    fn start(sink: &[&str]) -> Self {
        let mut cmd = Command::new("gst-launch-1.0");
        cmd.args(["-q", "videotestsrc", "is-live=true", "pattern=ball", "!"])
            .args(["video/x-raw,width=320,height=180,framerate=25/1", "!"])
            .args([
                "x264enc",
                "tune=zerolatency",
                "speed-preset=ultrafast",
                "bitrate=300",
            ])
            .args([
                "key-int-max=25",
                "!",
                "h264parse",
                "config-interval=-1",
                "!",
            ])
            .args(["mpegtsmux", "alignment=7", "!"])
            .args(sink)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Sender(cmd.spawn().expect("gst-launch-1.0 runs"))
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The box's view: the license's keys decrypt what the channel airs.
struct Viewer<'a> {
    op: &'a Operator,
    b: Box_,
    license: License,
    slate: Vec<Segment>,
}

/// A segment as a box gets it, decrypted.
struct Got {
    sequence: u64,
    plain: Vec<u8>,
    slate: bool,
}

impl<'a> Viewer<'a> {
    async fn new(op: &'a Operator) -> Self {
        let b = op
            .enroll(&op.add("alice", "basic").await)
            .await
            .expect("enroll");
        let (status, body) = op.get(&b, "/v1/license").await;
        assert_eq!(status, 200);
        Self {
            op,
            b,
            license: License::decode(&body).expect("license"),
            slate: slate(),
        }
    }

    async fn live(&self, channel: u16) -> LiveEdge {
        let (status, body) = self
            .op
            .get(&self.b, &format!("/v1/channels/{channel}/live"))
            .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).expect("live")
    }

    async fn segment(&self, channel: u16, sequence: u64) -> Option<Got> {
        let (status, segment) = self
            .op
            .get(
                &self.b,
                &format!("/v1/channels/{channel}/segments/{sequence}"),
            )
            .await;
        if status == 404 {
            return None;
        }
        assert_eq!(status, 200);
        let header = SegmentHeader::decode(&segment).expect("header");
        assert_eq!((header.channel, header.sequence), (channel, sequence));
        let key = segment_key(&self.b, &self.license, &header);
        let mut plain = segment[stb_protocol::segment::HEADER_LEN..].to_vec();
        SegmentCipher::new(&key)
            .expect("cipher")
            .apply_keystream_at(&header.iv, 0, &mut plain)
            .expect("ctr");
        let slate = self.slate.iter().any(|s| s.data == plain);
        Some(Got {
            sequence,
            plain,
            slate,
        })
    }

    /// The first `count` sequence numbers `/stream` sends, within 10 s.
    async fn stream(&self, channel: u16, count: usize) -> Vec<u64> {
        let headers = stream_headers(self.op, &self.b, channel, count).await;
        headers.iter().map(|h| h.sequence).collect()
    }

    async fn latest(&self, channel: u16) -> Got {
        let live = self.live(channel).await;
        self.segment(channel, live.sequence)
            .await
            .expect("the live segment is served")
    }

    /// Polls until the newest segment of `channel` is (not) the slate.
    async fn wait_for(&self, channel: u16, slate: bool, within: Duration) -> Got {
        let until = Instant::now() + within;
        loop {
            let got = self.latest(channel).await;
            if got.slate == slate {
                return got;
            }
            assert!(
                Instant::now() < until,
                "channel {channel}: still {} after {within:?}",
                if slate { "live" } else { "on the slate" }
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn feed_status(op: &Operator, channel: u16) -> InputStatus {
    match &op.running.state.catalogue.channels[&channel].source {
        Source::Live(feed) => feed.status(),
        Source::Looped(_) => panic!("channel {channel} is looped"),
    }
}

/// Waits until the server reports `status` for the input of `channel`.
async fn wait_status(op: &Operator, channel: u16, status: InputStatus, within: Duration) {
    let until = Instant::now() + within;
    while feed_status(op, channel) != status {
        assert!(
            Instant::now() < until,
            "channel {channel}: {:?}, not {status:?}",
            feed_status(op, channel)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udp_input_airs_the_slate_while_lost_and_comes_back_by_itself() {
    let port = free_port(true);
    let op = operator_with_inputs(&[format!("udp://127.0.0.1:{port}")]).await;
    let viewer = Viewer::new(&op).await;
    // Before the input ever sent anything, the channel airs the slate.
    let first = viewer.wait_for(11, true, Duration::from_secs(5)).await;

    let udp = |p: u16| format!("port={p}");
    let sender = Sender::start(&["udpsink", "host=127.0.0.1", &udp(port)]);
    let live = viewer.wait_for(11, false, Duration::from_secs(20)).await;
    assert!(gst_decodes(&live.plain), "a live segment decodes");
    let streamed = viewer.stream(11, 3).await;
    assert_eq!(streamed, [0, 1, 2].map(|i| streamed[0] + i));
    wait_status(&op, 11, InputStatus::Ok, Duration::from_secs(2)).await;

    drop(sender);
    let lost = viewer.wait_for(11, true, Duration::from_secs(10)).await;
    let _sender = Sender::start(&["udpsink", "host=127.0.0.1", &udp(port)]);
    let back = viewer.wait_for(11, false, Duration::from_secs(20)).await;

    // One timeline: every number from the first slate to now aired, each once (the oldest
    // may have left the minute kept).
    let from = first
        .sequence
        .max(back.sequence + 1 - content_server::live::LIVE_KEPT as u64);
    let mut previous: Option<Got> = None;
    let mut seen = 0;
    for sequence in from..=back.sequence {
        let got = viewer
            .segment(11, sequence)
            .await
            .unwrap_or_else(|| panic!("segment {sequence} is missing"));
        seen += 1;
        // Each side of a change decodes on its own: the last GOP received before the loss
        // too (the box's player follows the change itself: stb-app's player tests).
        if let Some(p) = previous.filter(|p| p.slate != got.slate) {
            assert!(gst_decodes(&p.plain), "segment {} decodes", p.sequence);
            assert!(gst_decodes(&got.plain), "segment {sequence} decodes");
        }
        previous = Some(got);
    }
    assert!(lost.sequence > live.sequence && back.sequence > lost.sequence);
    assert_eq!(seen, back.sequence - from + 1);
    // A restart (or another instance) takes its numbers from the database, above them all:
    // no number, which is the segment's IV, is ever used twice.
    let next = op
        .store
        .reserve_live_sequences(11, 1, content_server::live::FIRST_SEQUENCE)
        .await
        .expect("reserve");
    assert!(next > viewer.live(11).await.sequence + 1);
    // Looped channels are untouched by the live ones.
    assert_eq!(op.get(&viewer.b, "/v1/channels/1/live").await.0, 200);
}

/// An HTTP server that streams the fixture, looped, at about its bit rate (a TS "pull" from
/// an encoder or a satellite receiver's web interface).
async fn serve_ts_over_http(port: u16) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ts = std::fs::read(media("ch2.ts")).expect("fixture");
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            return;
        };
        let ts = ts.clone();
        tokio::spawn(async move {
            let mut request = [0u8; 1024];
            let _ = sock.read(&mut request).await;
            let head = "HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nConnection: close\r\n\r\n";
            if sock.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            // 24 s of video in chunks of 70 packets, each sent at its share of the 24 s.
            let chunk = 188 * 70;
            let pace = Duration::from_secs_f64(24.0 * chunk as f64 / ts.len() as f64);
            for part in ts.chunks(chunk).cycle() {
                if sock.write_all(part).await.is_err() {
                    return;
                }
                tokio::time::sleep(pace).await;
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtp_srt_and_http_inputs_are_split_and_decode() {
    let (rtp, srt, http) = (free_port(true), free_port(true), free_port(false));
    let op = operator_with_inputs(&[
        format!("rtp://127.0.0.1:{rtp}"),
        format!("srt://127.0.0.1:{srt}"),
        format!("http://127.0.0.1:{http}/live.ts"),
    ])
    .await;
    let viewer = Viewer::new(&op).await;
    let _rtp = Sender::start(&[
        "rtpmp2tpay",
        "!",
        "udpsink",
        "host=127.0.0.1",
        &format!("port={rtp}"),
    ]);
    let _srt = Sender::start(&[
        "srtsink",
        &format!("uri=srt://127.0.0.1:{srt}?mode=listener"),
        "wait-for-connection=false",
    ]);
    tokio::spawn(serve_ts_over_http(http));
    for channel in [11, 12, 13] {
        let got = viewer
            .wait_for(channel, false, Duration::from_secs(30))
            .await;
        assert!(gst_decodes(&got.plain), "channel {channel} decodes");
        wait_status(&op, channel, InputStatus::Ok, Duration::from_secs(2)).await;
    }
}

/// `ts` with the random-access flag of every packet cleared: no keyframe to start on.
fn without_keyframes(ts: &[u8]) -> Vec<u8> {
    let mut out = ts.to_vec();
    for p in out.chunks_exact_mut(188) {
        if p[3] & 0x20 != 0 && p[4] > 0 {
            p[5] &= !0x40;
        }
    }
    out
}

/// Sends `ts` to `port` in datagrams of 7 packets at about 2 MB/s, for `seconds`.
async fn send_udp(ts: Vec<u8>, port: u16, seconds: u64) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let until = Instant::now() + Duration::from_secs(seconds);
    for datagram in ts.chunks(188 * 7).cycle() {
        if Instant::now() > until {
            return;
        }
        let _ = socket.send_to(datagram, ("127.0.0.1", port)).await;
        tokio::time::sleep(Duration::from_micros(600)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_inputs_are_reported_and_the_slate_stays_on() {
    let ports = [free_port(true), free_port(true), free_port(true)];
    let op = operator_with_inputs(&ports.map(|p| format!("udp://127.0.0.1:{p}"))).await;
    let viewer = Viewer::new(&op).await;
    let fixture = std::fs::read(media("ch1.ts")).expect("fixture");
    // Not a transport stream at all, as fast as loopback takes it.
    let garbage: Vec<u8> = (0..188 * 7 * 64)
        .map(|i| (i * 31 % 251) as u8 | 1)
        .collect();
    // The fixture with every random access point unflagged: H.264 but no keyframe to start on.
    let no_keyframe = without_keyframes(&fixture);
    // The fixture with its PAT blanked into null packets: no program to find.
    let mut no_tables = fixture.clone();
    for p in no_tables.chunks_exact_mut(188) {
        if p[1] & 0x1f == 0 && p[2] == 0 {
            (p[1], p[2]) = (0x1f, 0xff);
        }
    }
    let started = viewer.latest(11).await.sequence;
    let senders = [garbage, no_keyframe, no_tables]
        .into_iter()
        .zip(ports)
        .map(|(ts, port)| tokio::spawn(send_udp(ts, port, 10)))
        .collect::<Vec<_>>();
    for (channel, status) in [
        (11, InputStatus::NoSync),
        (12, InputStatus::NoKeyframe),
        (13, InputStatus::NoProgram),
    ] {
        wait_status(&op, channel, status, Duration::from_secs(7)).await;
    }
    for channel in [11, 12, 13] {
        let got = viewer.latest(channel).await;
        assert!(got.slate, "channel {channel} airs the slate");
    }
    // The slate keeps airing, one segment after the other.
    let until = Instant::now() + Duration::from_secs(10);
    while viewer.latest(11).await.sequence < started + 4 {
        assert!(Instant::now() < until, "the slate stopped");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A box streaming the channel gets the slate in order, as it airs.
    let streamed = viewer.stream(12, 3).await;
    assert_eq!(streamed, [0, 1, 2].map(|i| streamed[0] + i));
    for s in senders {
        s.await.expect("sender");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_that_keeps_sending_but_stops_giving_pictures_goes_to_the_slate() {
    let port = free_port(true);
    let op = operator_with_inputs(&[format!("udp://127.0.0.1:{port}")]).await;
    let viewer = Viewer::new(&op).await;
    let fixture = std::fs::read(media("ch1.ts")).expect("fixture");
    let no_keyframe = without_keyframes(&fixture);
    let sender = tokio::spawn(async move {
        send_udp(fixture, port, 3).await;
        send_udp(no_keyframe, port, 20).await;
    });
    viewer.wait_for(11, false, Duration::from_secs(5)).await;
    // Data keeps coming, so the input is not silent; but no segment for 10 s is a loss too.
    viewer.wait_for(11, true, Duration::from_secs(16)).await;
    wait_status(&op, 11, InputStatus::NoKeyframe, Duration::from_secs(5)).await;
    sender.abort();
}
