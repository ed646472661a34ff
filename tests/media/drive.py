#!/usr/bin/env python3
"""The browser suite's checks (run by tests/media/run.sh inside its network namespace).

Real audio and video: headless Chromium with fake devices opens examples/media/index.html, which
joins through roomd's join extension with an Access Token minted by twilio-python and publishes
through the embedded Janus. twilio-python (pointed at roomd) checks what roomd's REST shows.
"""
import argparse
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

import requests

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VideoGrant
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "openapi"))
import conformance  # noqa: E402
from twilio.request_validator import RequestValidator
from twilio.rest import Client

PASSED = []


def check(name, ok, detail=""):
    if not ok:
        print(f"FAILED: {name} {detail}", flush=True)
        raise SystemExit(1)
    PASSED.append(name)
    print(f"ok: {name}", flush=True)


def eventually(what, probe, timeout=20.0, every=0.25):
    """The first truthy value of probe() within timeout seconds (None if none)."""
    end = time.time() + timeout
    last = None
    while time.time() < end:
        last = probe()
        if last:
            return last
        time.sleep(every)
    print(f"   (waited {timeout} s for {what}; last: {str(last)[:300]})", flush=True)
    return None


def access_token(args, identity, room):
    token = AccessToken(args.account, args.key, args.secret, identity=identity, ttl=3600)
    token.add_grant(VideoGrant(room=room))
    return token.to_jwt()


class Tab:
    """One browser tab on the page, as one participant."""

    def __init__(self, driver, args, identity, room, first=False):
        self.driver = driver
        if not first:
            driver.switch_to.new_window("tab")
        self.handle = driver.current_window_handle
        self.identity = identity
        query = urllib.parse.urlencode(
            {"roomd": args.roomd, "room": room, "token": access_token(args, identity, room)})
        driver.get(f"{args.page}?{query}")

    def state(self):
        self.driver.switch_to.window(self.handle)
        return self.driver.execute_script(
            "const s = window.roomd; return s && {participant: s.participant, media: s.media,"
            " published: s.published, publisherUp: s.publisherUp, subscribed: s.subscribed,"
            " errors: s.errors, ended: s.ended}")

    def stats(self):
        """Each handle's PeerConnection: state, and its RTP streams' counters."""
        self.driver.switch_to.window(self.handle)
        return self.driver.execute_async_script("""
            const done = arguments[0];
            (async () => {
              const out = [];
              for (const h of (window.roomd && window.roomd.handles) || []) {
                const pc = h.webrtcStuff && h.webrtcStuff.pc;
                if (!pc) { out.push({pc: null}); continue; }
                const rtp = [];
                (await pc.getStats()).forEach((s) => {
                  if (s.type === 'inbound-rtp' || s.type === 'outbound-rtp')
                    rtp.push({type: s.type, kind: s.kind, framesDecoded: s.framesDecoded || 0,
                              framesEncoded: s.framesEncoded || 0, bytesReceived: s.bytesReceived || 0,
                              bytesSent: s.bytesSent || 0, width: s.frameWidth || 0});
                });
                out.push({pc: pc.connectionState, rtp});
              }
              return out;
            })().then(done, (e) => done(String(e)));
        """)

    def remote_video_colour(self):
        """The spread between colour channels of a remote video frame (0 for grey or black)."""
        self.driver.switch_to.window(self.handle)
        return self.driver.execute_script("""
            const v = document.querySelector('#others video');
            if (!v || !v.videoWidth) return null;
            const c = document.createElement('canvas');
            c.width = v.videoWidth; c.height = v.videoHeight;
            const g = c.getContext('2d');
            g.drawImage(v, 0, 0);
            const d = g.getImageData(0, 0, c.width, c.height).data;
            let spread = 0, n = 0;
            for (let i = 0; i < d.length; i += 4 * 97) {
              spread += Math.max(d[i], d[i+1], d[i+2]) - Math.min(d[i], d[i+1], d[i+2]); n++;
            }
            return {width: c.width, height: c.height, spread: spread / n};
        """)

    def close(self, then):
        """Closes this tab (its page leaves: Janus sees the connection go), then switches to
        the tab `then`."""
        self.driver.switch_to.window(self.handle)
        self.driver.close()
        self.driver.switch_to.window(then.handle)

    def try_session(self, url, token):
        """Whether Janus opens a session for token (janus.js, from this page)."""
        self.driver.switch_to.window(self.handle)
        return self.driver.execute_async_script("""
            const [url, token, done] = arguments;
            const j = new Janus({server: url, token: token,
              success: () => { done('opened'); j.destroy(); },
              error: (e) => done('refused: ' + e)});
            setTimeout(() => done('no answer'), 10000);
        """, url, token)


def connected_pcs(stats):
    return [s for s in stats or [] if isinstance(s, dict) and s.get("pc") == "connected"]


def main():
    p = argparse.ArgumentParser()
    for a in ["roomd", "page", "account", "token", "key", "secret", "work"]:
        p.add_argument(f"--{a}", required=True)
    args = p.parse_args()

    client = Client(args.account, args.token)
    client.video.base_url = args.roomd
    video = client.video.v1

    opts = Options()
    for flag in ["--headless=new", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                 "--no-sandbox", "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
                 f"--user-data-dir={args.work}/chrome", "--no-first-run", "--disable-background-networking",
                 "--disable-features=WebRtcHideLocalIpsWithMdns"]:
        opts.add_argument(flag)
    service = Service(executable_path="/usr/bin/chromedriver", log_output=f"{args.work}/chromedriver.log")
    driver = webdriver.Chrome(options=opts, service=service)
    driver.set_script_timeout(20)
    try:
        tabs = run(args, video, driver)
        record(args, client, video, driver, tabs)
        compose(args, client, video, driver, tabs)
        console_player(args, video, driver)
    finally:
        driver.quit()
    print(f"browser suite: {len(PASSED)} passed, 0 failed", flush=True)


def run(args, video, driver):
    # 1. A browser joins with an Access Token and publishes its camera and microphone.
    alice = Tab(driver, args, "alice", "Standup", first=True)
    st = eventually("alice publishing", lambda: (s := alice.state()) and (s["publisherUp"] or s["errors"]) and s)
    check("a browser joins with an Access Token and publishes over WebRTC",
          st and st["publisherUp"] and not st["errors"], st)
    room_sid = st["participant"]["room_sid"]
    alice_sid = st["participant"]["sid"]
    media = st["media"]
    check("the join answers the media object", media["room"] == room_sid and media["id"] == alice_sid
          and media["url"].startswith("ws://127.0.0.1:") and media["token"].startswith(alice_sid + "."), media)

    participant = video.rooms(room_sid).participants(alice_sid).fetch()
    check("twilio-python shows the participant connected", participant.status == "connected", participant.status)
    kinds = eventually("two published tracks", lambda: sorted(
        t.kind for t in video.rooms(room_sid).participants(alice_sid).published_tracks.list()) == ["audio", "video"])
    check("roomd lists an audio and a video track that Janus reported", kinds,
          [t.kind for t in video.rooms(room_sid).participants(alice_sid).published_tracks.list()])

    # 2. A second browser receives the first one's frames.
    bob = Tab(driver, args, "bob", "Standup")
    st = eventually("bob subscribed to alice", lambda: (s := bob.state()) and (
        (s["subscribed"].get(alice_sid) or {}).get("tracks", 0) >= 2 or s["errors"]) and s)
    check("a second browser subscribes to the first", st and not st["errors"], st)
    decoded = eventually("frames decoded", lambda: [r for s in connected_pcs(bob.stats()) for r in s["rtp"]
                                                    if r["type"] == "inbound-rtp" and r["kind"] == "video"
                                                    and r["framesDecoded"] > 10])
    check("the second browser decodes the first one's video frames", decoded, bob.stats())
    colour = eventually("a coloured frame", lambda: (c := bob.remote_video_colour()) and c["spread"] > 20 and c)
    check("the frames carry the fake camera's picture (colour, not black)", colour, bob.remote_video_colour())
    check("both participants are connected for roomd",
          sorted(p.identity for p in video.rooms(room_sid).participants.list(status="connected")) == ["alice", "bob"])

    # 3. A REST kick ends the first browser's PeerConnection, and its token opens nothing.
    old_token = media["token"]
    video.rooms(room_sid).participants(alice_sid).update(status="disconnected")
    gone = eventually("alice's PeerConnection closed", lambda: not connected_pcs(alice.stats()) and True, timeout=10)
    check("a REST kick ends the kicked browser's PeerConnection within seconds", gone, alice.stats())
    check("the kicked participant's old token no longer opens a Janus session",
          alice.try_session(media["url"], old_token).startswith("refused"))
    check("the other browser stays connected", connected_pcs(bob.stats()), bob.stats())

    # 4. The room's end ends every session in it.
    video.rooms(room_sid).update(status="completed")
    gone = eventually("bob's PeerConnections closed", lambda: not connected_pcs(bob.stats()) and True, timeout=10)
    check("a room's end ends every browser's sessions in it", gone, bob.stats())
    bob_sid = bob.state()["participant"]["sid"]
    check("roomd shows both disconnected",
          video.rooms(room_sid).participants(bob_sid).fetch().status == "disconnected")

    # 5. Janus killed: restarted, and roomd converges (the participant whose media died is
    #    disconnected; a new join gets media again).
    carol = Tab(driver, args, "carol", "Second")
    st = eventually("carol publishing", lambda: (s := carol.state()) and (s["publisherUp"] or s["errors"]) and s)
    check("a browser joins a second room", st and st["publisherUp"], st)
    second_sid, carol_sid = st["participant"]["room_sid"], st["participant"]["sid"]
    janus_pid = find_janus()
    check("the embedded Janus runs", janus_pid)
    os.kill(janus_pid, signal.SIGKILL)
    restarted = eventually("Janus restarted", lambda: (p := find_janus()) and p != janus_pid and p, timeout=20)
    check("a Janus killed with SIGKILL is restarted", restarted)
    status = eventually("carol disconnected", lambda: video.rooms(second_sid).participants(carol_sid).fetch().status
                        == "disconnected", timeout=20)
    check("roomd disconnects the participant whose media died with Janus", status)
    dave = Tab(driver, args, "dave", "Second")
    st = eventually("dave publishing", lambda: (s := dave.state()) and (s["publisherUp"] or s["errors"]) and s)
    check("after the restart a new join publishes in the same room again", st and st["publisherUp"], st)
    return dave


class Callbacks:
    """Status callbacks, received on this machine (inside the namespace)."""

    def __init__(self):
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                received.append((self.path, dict(urllib.parse.parse_qsl(body)),
                                 self.headers.get("X-Twilio-Signature")))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, room_sid, name):
        return [p for _, p, _ in self.received if p.get("RoomSid") == room_sid
                and p.get("StatusCallbackEvent") == name]


def ffprobe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format",
                          "-show_streams", path], capture_output=True, check=True)
    return json.loads(out.stdout)


def published_for(video, room_sid, identity, driver, args, keep):
    """A browser joins room_sid's room as identity and publishes; after about 6 s it leaves (its
    tab closes). Returns the participant's SID and the seconds it published (as REST saw them)."""
    tab = Tab(driver, args, identity, room_sid)
    st = eventually(f"{identity} publishing", lambda: (s := tab.state()) and (s["publisherUp"] or s["errors"]) and s)
    check(f"{identity} publishes in a recorded room", st and st["publisherUp"], st)
    sid = st["participant"]["sid"]
    eventually("two tracks", lambda: len(video.rooms(room_sid).participants(sid).published_tracks.list()) == 2)
    began = time.time()
    time.sleep(6)
    tab.close(keep)
    eventually(f"{identity} gone", lambda: video.rooms(room_sid).participants(sid).fetch().status == "disconnected")
    return sid, time.time() - began


def record(args, client, video, driver, keep):
    """6. Recordings of a browser's fake camera and microphone, through twilio-python."""
    callbacks = Callbacks()
    room = video.rooms.create(unique_name="Recorded", record_participants_on_connect=True,
                              status_callback=callbacks.url)
    erin, seconds = published_for(video, room.sid, "erin", driver, args, keep)
    done = eventually("both recordings completed", lambda: (rs := video.rooms(room.sid).recordings.list())
                      and len(rs) == 2 and all(r.status == "completed" for r in rs) and rs, timeout=60)
    check("a participant's audio and video become two completed recordings", done,
          [(r.type, r.status) for r in video.rooms(room.sid).recordings.list()])
    for r in done:
        check(f"the {r.type} recording lasts as long as it was published (within 2 s)",
              abs(r.duration - seconds) <= 2, (r.duration, seconds))
        check(f"the {r.type} recording names its track and participant",
              r.grouping_sids == {"room_sid": room.sid, "participant_sid": erin}
              and r.source_sid.startswith("MT") and r.container_format == ("mka" if r.type == "audio" else "mkv"),
              (r.grouping_sids, r.source_sid, r.container_format))
        media = requests.get(f"{args.roomd}/v1/Recordings/{r.sid}/Media", auth=(args.account, args.token),
                             allow_redirects=False, timeout=10)
        check(f"GET .../Media answers 302 with redirect_to ({r.type})",
              media.status_code == 302 and media.json()["redirect_to"] == media.headers["Location"],
              (media.status_code, media.text[:200]))
        path = os.path.join(args.work, f"{r.sid}.{r.container_format}")
        with open(path, "wb") as f:
            f.write(requests.get(media.json()["redirect_to"], timeout=30).content)
        probed = ffprobe(path)
        codec = "opus" if r.type == "audio" else "vp8"
        streams = probed["streams"]
        check(f"ffprobe reads the {r.type} file as Matroska with one {codec} stream of the recording's duration",
              "matroska" in probed["format"]["format_name"] and len(streams) == 1
              and streams[0]["codec_name"] == codec
              and abs(float(probed["format"]["duration"]) - r.duration) <= 1.0,
              (probed["format"], [s["codec_name"] for s in streams]))
    started = eventually("recording callbacks", lambda: len(callbacks.events(room.sid, "recording-completed")) == 2
                         and callbacks.received)
    validator = RequestValidator(args.token)
    check("recording-started and recording-completed callbacks arrive, signed",
          started and len(callbacks.events(room.sid, "recording-started")) == 2
          and all(validator.validate(callbacks.url, params, sig) for _, params, sig in callbacks.received),
          callbacks.received[-3:])
    completed = callbacks.events(room.sid, "recording-completed")[0]
    check("recording-completed carries MediaUri, Duration and Size",
          completed["MediaUri"].endswith("/Media") and int(completed["Duration"]) >= 1 and int(completed["Size"]) > 0,
          completed)

    # Rules that exclude video leave only the audio recording.
    rules_room = video.rooms.create(unique_name="AudioRecorded", record_participants_on_connect=True)
    video.rooms(rules_room.sid).recording_rules.update(
        rules=[{"type": "include", "all": True}, {"type": "exclude", "kind": "video"}])
    published_for(video, rules_room.sid, "fay", driver, args, keep)
    only = eventually("the audio recording completed",
                      lambda: (rs := video.rooms(rules_room.sid).recordings.list())
                      and all(r.status == "completed" for r in rs) and rs, timeout=60)
    check("recording rules that exclude video leave only the audio recording",
          only and [r.type for r in only] == ["audio"], [(r.type, r.status) for r in only or []])

    # Every recording operation answers as Twilio's OpenAPI document says.
    def conforms(method, template, **sids):
        path = template.format(**sids)
        r = requests.request(method, f"{args.roomd}{path}", auth=(args.account, args.token), timeout=10)
        body = r.json() if r.content else None
        return conformance.problems(method, template, r.status_code, body)

    sids = {"RoomSid": room.sid, "Sid": done[1].sid}
    found = (conforms("GET", "/v1/Recordings") + conforms("GET", "/v1/Recordings/{Sid}", **sids)
             + conforms("GET", "/v1/Rooms/{RoomSid}/Recordings", **sids)
             + conforms("GET", "/v1/Rooms/{RoomSid}/Recordings/{Sid}", **sids)
             + conforms("GET", "/v1/Rooms/{RoomSid}/Transcriptions", **sids)
             + conforms("DELETE", "/v1/Rooms/{RoomSid}/Recordings/{Sid}", **sids)
             + conforms("GET", "/v1/Recordings/{Sid}", **sids))
    check("every recording operation conforms to Twilio's OpenAPI response schemas", not found, found)

    # A delete keeps the recording, `deleted`, and its media is gone.
    victim = done[0]
    check("DELETE /v1/Recordings/{Sid} answers 204 as the document says",
          client.video.v1.recordings(victim.sid).delete()
          and not conforms("DELETE", "/v1/Recordings/{Sid}", Sid=victim.sid))
    check("a deleted recording stays, deleted", client.video.v1.recordings(victim.sid).fetch().status == "deleted")
    gone = requests.get(f"{args.roomd}/v1/Recordings/{victim.sid}/Media", auth=(args.account, args.token),
                        allow_redirects=False, timeout=10)
    check("a deleted recording's media is 404", gone.status_code == 404 and gone.json()["code"] == 20404,
          gone.text[:200])


def tile_coverage(path, at):
    """The share of non-black pixels (any colour channel above 40) in the left and right cells'
    picture areas (a 4:3 tile centred in each 320x480 cell) of the 640x480 frame at `at` seconds.
    Colour, not grey: the fake camera's picture is mostly a dark green that grey reads as black."""
    out = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-ss", f"{at:.2f}", "-i", path,
                          "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    if len(out) != 640 * 480 * 3:
        return None

    def share(x0, x1):
        points = [(r, c) for r in range(130, 350, 4) for c in range(x0, x1, 4)]
        lit = sum(1 for r, c in points if max(out[(r * 640 + c) * 3:(r * 640 + c) * 3 + 3]) > 40)
        return lit / len(points)
    return share(10, 310), share(330, 630)


def compose(args, client, video, driver, keep):
    """7. Compositions of two browsers' recordings (ffmpeg), and a hook that composes a room
    that ends, through twilio-python."""
    callbacks = Callbacks()
    hook = video.composition_hooks.create(friendly_name="Every room", audio_sources=["*"], format="webm",
                                          video_layout={"main": {"video_sources": ["*"]}},
                                          resolution="320x240", status_callback=callbacks.url)
    room = video.rooms.create(unique_name="Composed", record_participants_on_connect=True)
    tabs = [Tab(driver, args, who, room.sid) for who in ("gina", "hank")]
    for tab in tabs:
        st = eventually(f"{tab.identity} publishing",
                        lambda: (s := tab.state()) and (s["publisherUp"] or s["errors"]) and s)
        check(f"{tab.identity} publishes in a room that will be composed", st and st["publisherUp"], st)
    time.sleep(10)
    for tab in tabs:
        tab.close(keep)
    video.rooms(room.sid).update(status="completed")
    room = video.rooms(room.sid).fetch()
    done = eventually("four recordings completed", lambda: (rs := video.rooms(room.sid).recordings.list())
                      and len(rs) == 4 and all(r.status == "completed" for r in rs) and rs, timeout=90)
    check("two browsers' audio and video become four completed recordings", done,
          [(r.type, r.status) for r in video.rooms(room.sid).recordings.list()])

    made = {}
    for fmt in ("mp4", "webm"):
        c = video.compositions.create(room_sid=room.sid, video_layout={"grid": {"video_sources": ["*"]}},
                                      audio_sources=["*"], format=fmt, resolution="640x480", trim=False,
                                      status_callback=callbacks.url)
        check(f"a {fmt} grid composition is enqueued", c.status == "enqueued" and c.format == fmt, c.status)
        made[fmt] = c.sid
    for fmt, sid in made.items():
        c = eventually(f"the {fmt} composition completed", lambda: (x := video.compositions(sid).fetch())
                       and x.status in ("completed", "failed") and x, timeout=180)
        check(f"the {fmt} composition completes", c and c.status == "completed", c and c.status)
        media = requests.get(f"{args.roomd}/v1/Compositions/{sid}/Media", auth=(args.account, args.token),
                             allow_redirects=False, timeout=10)
        check(f"GET .../Media of the {fmt} composition answers 302 with redirect_to",
              media.status_code == 302 and media.json()["redirect_to"] == media.headers["Location"],
              (media.status_code, media.text[:200]))
        path = os.path.join(args.work, f"{sid}.{fmt}")
        with open(path, "wb") as f:
            f.write(requests.get(media.json()["redirect_to"], timeout=60).content)
        probed = ffprobe(path)
        streams = {s["codec_type"]: s for s in probed["streams"]}
        want = ("h264", "aac") if fmt == "mp4" else ("vp8", "opus")
        seconds = float(probed["format"]["duration"])
        check(f"ffprobe shows {want[0]} 640x480 and {want[1]} in the {fmt} file, as long as the room (within 2 s)",
              streams.get("video", {}).get("codec_name") == want[0]
              and (streams["video"]["width"], streams["video"]["height"]) == (640, 480)
              and streams.get("audio", {}).get("codec_name") == want[1]
              and abs(seconds - room.duration) <= 2,
              ({k: v["codec_name"] for k, v in streams.items()}, seconds, room.duration))
        if fmt == "mp4":
            tiles = tile_coverage(path, seconds / 2)
            check("a frame from the middle of the mp4 shows two non-black tiles side by side",
                  tiles and min(tiles) > 0.8, tiles)

    hooked = eventually("the hook's composition", lambda: [c for c in video.compositions.list(room_sid=room.sid)
                                                          if c.sid not in made.values()], timeout=30)
    check("the enabled hook composed the room that ended, without a request",
          hooked and len(hooked) == 1 and hooked[0].resolution == "320x240" and hooked[0].format == "webm",
          [(c.sid, c.resolution, c.format) for c in hooked or []])
    hooked = hooked[0]
    finished = eventually("the hook's composition completed", lambda: (x := video.compositions(hooked.sid).fetch())
                          and x.status == "completed" and x, timeout=180)
    check("the hook's composition completes", finished)
    available = eventually("composition-available callbacks", lambda: len(
        [p for _, p, _ in callbacks.received if p.get("StatusCallbackEvent") == "composition-available"]) == 3)
    validator = RequestValidator(args.token)
    check("composition-enqueued, -started and -available callbacks arrive for each, signed",
          available and all(validator.validate(callbacks.url, p, sig) for _, p, sig in callbacks.received)
          and all(sum(1 for _, p, _ in callbacks.received if p.get("CompositionSid") == sid
                      and p["StatusCallbackEvent"] == e) == 1
                  for sid in list(made.values()) + [hooked.sid]
                  for e in ("composition-enqueued", "composition-started", "composition-available")),
          [(p.get("CompositionSid"), p.get("StatusCallbackEvent")) for _, p, _ in callbacks.received][-12:])

    # Every composition, hook and settings operation answers as Twilio's OpenAPI document says.
    def conforms(method, template, data=None, **sids):
        path = template.format(**sids)
        r = requests.request(method, f"{args.roomd}{path}", auth=(args.account, args.token), data=data,
                             timeout=10)
        return conformance.problems(method, template, r.status_code, r.json() if r.content else None)

    sid = made["webm"]
    found = (conforms("GET", "/v1/Compositions") + conforms("GET", "/v1/Compositions/{Sid}", Sid=sid)
             + conforms("POST", "/v1/Compositions", {"RoomSid": room.sid, "AudioSources": "*"})
             + conforms("GET", "/v1/CompositionHooks") + conforms("GET", "/v1/CompositionHooks/{Sid}", Sid=hook.sid)
             + conforms("POST", "/v1/CompositionHooks", {"FriendlyName": "Another", "AudioSources": "*"})
             + conforms("POST", "/v1/CompositionHooks/{Sid}", {"FriendlyName": "Every room", "Enabled": "false"},
                        Sid=hook.sid)
             + conforms("GET", "/v1/CompositionSettings/Default") + conforms("GET", "/v1/RecordingSettings/Default")
             + conforms("POST", "/v1/CompositionSettings/Default", {"FriendlyName": "ours"})
             + conforms("POST", "/v1/RecordingSettings/Default", {"FriendlyName": "ours"})
             + conforms("DELETE", "/v1/Compositions/{Sid}", Sid=sid)
             + conforms("DELETE", "/v1/CompositionHooks/{Sid}", Sid=hook.sid))
    check("every composition, hook and settings operation conforms to Twilio's OpenAPI response schemas",
          not found, found)
    check("a deleted composition stays, deleted, without media",
          video.compositions(sid).fetch().status == "deleted" and requests.get(
              f"{args.roomd}/v1/Compositions/{sid}/Media", auth=(args.account, args.token),
              allow_redirects=False, timeout=10).status_code == 404)


def console_player(args, video, driver):
    """8. The console's page of a composed room: it plays the room's recordings and compositions
    (the browser loads each player's media through its signed link), and deletes a recording."""
    from selenium.webdriver.common.by import By
    composed = next(c for c in video.compositions.list() if c.status == "completed")
    room_sid = composed.room_sid
    completed = [r for r in video.rooms(room_sid).recordings.list() if r.status == "completed"]
    driver.switch_to.new_window("tab")
    driver.get(f"{args.roomd}/console/sign-in")
    driver.find_element(By.ID, "sid").send_keys(args.account)
    driver.find_element(By.ID, "token").send_keys(args.token)
    driver.find_element(By.XPATH, "//button[text()='Sign in']").click()
    eventually("the rooms page", lambda: driver.current_url.endswith("/console/rooms"))
    driver.get(f"{args.roomd}/console/rooms/{room_sid}")
    players = driver.find_elements(By.CSS_SELECTOR, "#recordings video, #recordings audio")
    check("the console's room page has a player for each completed recording", len(players) == len(completed),
          (len(players), len(completed)))
    load = ("const el = arguments[0], done = arguments[arguments.length - 1];"
            "el.addEventListener('loadedmetadata', () => done([el.readyState, el.duration, el.videoWidth || 0]));"
            "el.addEventListener('error', () => done(['error', el.error && el.error.code]));"
            "el.preload = 'metadata'; el.load();")
    for kind in ("video", "audio"):
        el = driver.find_element(By.CSS_SELECTOR, f"#recordings {kind}")
        state = driver.execute_async_script(load, el)
        check(f"the console's {kind} player loads its recording through the signed link",
              state[0] != "error" and state[0] >= 1 and state[1] > 0, state)
    el = driver.find_element(By.CSS_SELECTOR, f"#compositions tr[data-sid='{composed.sid}'] video")
    state = driver.execute_async_script(load, el)
    check("the console's composition player loads the composition", state[0] != "error" and state[1] > 0
          and state[2] > 0, state)
    victim = completed[0]
    driver.find_element(By.ID, f"delete-{victim.sid}").click()
    eventually("the confirmation", lambda: driver.switch_to.alert)
    driver.switch_to.alert.accept()
    check("Delete on the console's room page deletes the recording, as the API's DELETE does",
          eventually("deleted", lambda: video.recordings(victim.sid).fetch().status == "deleted"))
    check("the deleted recording's player leaves the page",
          eventually("no player", lambda: not driver.find_elements(
              By.CSS_SELECTOR, f"#recordings tr[data-sid='{victim.sid}'] video, "
                               f"#recordings tr[data-sid='{victim.sid}'] audio")))


def find_janus():
    """The PID of a process named janus (there is one in this network namespace's suite)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "janus":
                    continue
            if os.readlink(f"/proc/{pid}/ns/net") == os.readlink("/proc/self/ns/net"):
                return int(pid)
        except OSError:
            continue
    return None


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001
        print(f"FAILED: {type(e).__name__}: {e}", flush=True)
        sys.exit(1)
