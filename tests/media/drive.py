#!/usr/bin/env python3
"""The browser suite's checks (run by tests/media/run.sh inside its network namespace).

Real audio and video: headless Chromium with fake devices opens examples/media/index.html, which
joins through roomd's join extension with an Access Token minted by twilio-python and publishes
through the embedded Janus. twilio-python (pointed at roomd) checks what roomd's REST shows.
"""
import argparse
import os
import signal
import sys
import time
import urllib.parse

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VideoGrant
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
        run(args, video, driver)
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
