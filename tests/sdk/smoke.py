"""Smoke test through the official twilio-python client against a running roomd.

Usage: smoke.py BASE_URL ACCOUNT_SID AUTH_TOKEN API_KEY_SID API_KEY_SECRET CLOCK_ACCOUNT_SID CLOCK_AUTH_TOKEN
(the last two: an account on a test clock)
Only the base URL changes; everything else is the library's own behaviour.
"""
import base64
import datetime
import http.server
import json
import sys
import threading
import time
import urllib.parse
import urllib.request

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VideoGrant
from twilio.request_validator import RequestValidator
from twilio.rest import Client

base_url, account_sid, auth_token, key_sid, key_secret, clock_sid, clock_token = sys.argv[1:8]
client = Client(account_sid, auth_token)
client.video.base_url = base_url
rooms = client.video.v1.rooms

results = []


def check(name, condition, detail=""):
    results.append(condition)
    print(("ok   " if condition else "FAIL ") + name + ("" if condition else f": {detail}"))


def expect_error(name, fn, status, code):
    try:
        fn()
    except TwilioRestException as e:
        check(name, e.status == status and e.code == code, f"got {e.status} {e.code} {e.msg}")
    else:
        check(name, False, "no exception")


run = datetime.datetime.now(datetime.timezone.utc).strftime("%H%M%S%f")

# create
room = rooms.create(
    unique_name=f"smoke-{run}",
    type="group",
    max_participants=10,
    video_codecs=["VP8", "H264"],
    recording_rules=[{"type": "include", "all": True}],
    record_participants_on_connect=True,
    status_callback="http://127.0.0.1:9/events",
    empty_room_timeout=3,
)
check("create returns the room", room.sid.startswith("RM") and room.unique_name == f"smoke-{run}", room.sid)
check("dates parse as datetimes", isinstance(room.date_created, datetime.datetime), repr(room.date_created))
check("fields have their types",
      room.max_participants == 10 and room.video_codecs == ["VP8", "H264"]
      and room.record_participants_on_connect is True and room.empty_room_timeout == 3
      and room.end_time is None and room.duration is None and room.status == "in-progress",
      vars(room))
check("links are absolute on roomd", room.links["participants"] == f"{base_url}/v1/Rooms/{room.sid}/Participants",
      room.links)

# fetch by SID and by name
check("fetch by sid", rooms(room.sid).fetch().unique_name == room.unique_name)
check("fetch by name", rooms(f"smoke-{run}").fetch().sid == room.sid)
expect_error("fetch unknown is 404/20404", lambda: rooms(f"missing-{run}").fetch(), 404, 20404)
expect_error("duplicate name is 400/53113", lambda: rooms.create(unique_name=f"smoke-{run}"), 400, 53113)
expect_error("bad MaxParticipants is 400/53107", lambda: rooms.create(max_participants=500), 400, 53107)

# list with paging: the library follows next_page_url until it ends
created = {room.sid}
for i in range(7):
    created.add(rooms.create(unique_name=f"page-{run}-{i}").sid)
listed = [r.sid for r in rooms.list(page_size=3)]
check("list(page_size=3) walks every page once", created <= set(listed) and len(listed) == len(set(listed)),
      f"{len(listed)} listed")
streamed = [r.sid for r in rooms.stream(page_size=2, limit=5)]
check("stream(limit=5) stops at five", len(streamed) == 5 and len(set(streamed)) == 5, streamed)
page = rooms.page(page_size=3)
check("page() exposes next_page_url", page.next_page_url is not None and page.next_page_url.startswith(base_url))
second = page.next_page()
check("next_page() follows it", second is not None and len(list(second)) == 3)
newest = [r.date_created for r in rooms.list(page_size=4)]
check("newest first", newest == sorted(newest, reverse=True))

# filters
today = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
check("unique_name filter", [r.sid for r in rooms.list(unique_name=f"smoke-{run}")] == [room.sid])
check("date_created_after filter", created <= {r.sid for r in rooms.list(date_created_after=today, page_size=50)})
check("date_created_before filter",
      not created & {r.sid for r in rooms.list(date_created_before=today, page_size=50)})

# complete
done = rooms(room.sid).update(status="completed")
check("update to completed", done.status == "completed" and isinstance(done.end_time, datetime.datetime)
      and isinstance(done.duration, int), vars(done))
expect_error("completing twice is 400/53118", lambda: rooms(room.sid).update(status="completed"), 400, 53118)
expect_error("fetch by name after completion is 404", lambda: rooms(f"smoke-{run}").fetch(), 404, 20404)
completed = [r.sid for r in rooms.list(status="completed", page_size=2)]
check("status=completed filter with paging", room.sid in completed and not set(completed) - {room.sid} & created)
check("in-progress list excludes it", room.sid not in {r.sid for r in rooms.list(page_size=100)})

# an API key acts as its account
by_key = Client(key_sid, key_secret, account_sid)
by_key.video.base_url = base_url
keyed = by_key.video.v1.rooms.create(unique_name=f"smoke-key-{run}")
check("an API key creates rooms of its account", keyed.account_sid == account_sid, keyed.account_sid)
check("the account sees the key's room", rooms(keyed.sid).fetch().unique_name == f"smoke-key-{run}")

# participants: joined through roomd's join API (an Access Token minted by the library itself, and
# Basic auth + Identity), then read, kicked and anonymized through the library.
def join(room_name, headers, form=None):
    req = urllib.request.Request(f"{base_url}/v1/Rooms/{urllib.parse.quote(room_name)}/Participants",
                                 data=urllib.parse.urlencode(form or {}).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.load(resp)


people = rooms.create(unique_name=f"people-{run}", max_participants=5)
token = AccessToken(account_sid, key_sid, key_secret, identity="alice")
token.add_grant(VideoGrant(room=people.unique_name))
status, alice = join(people.unique_name, {"Authorization": f"Bearer {token.to_jwt()}"})
check("join with an Access Token", status == 201 and alice["identity"] == "alice", alice)
basic = "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
for who in ("bob", "carol"):
    status, joined = join(people.sid, {"Authorization": basic}, {"Identity": who})
    check(f"join {who} with Basic auth + Identity", status == 201 and joined["room_sid"] == people.sid, joined)
participants = rooms(people.sid).participants
listed = participants.list()
check("participants list, join order", [p.identity for p in listed] == ["alice", "bob", "carol"],
      [p.identity for p in listed])
first = listed[0]
check("participant fields and types", first.sid.startswith("PA") and first.status == "connected"
      and isinstance(first.start_time, datetime.datetime) and first.end_time is None and first.duration is None
      and first.room_sid == people.sid and first.url.startswith(base_url), vars(first))
check("participants paging", [p.identity for p in participants.list(page_size=1)] == ["alice", "bob", "carol"])
check("fetch participant by sid", participants(alice["sid"]).fetch().identity == "alice")
check("fetch participant by identity", rooms(people.unique_name).participants("alice").fetch().sid == alice["sid"])
kicked = participants("bob").update(status="disconnected")
check("kick", kicked.status == "disconnected" and isinstance(kicked.duration, int)
      and isinstance(kicked.end_time, datetime.datetime), vars(kicked))
expect_error("a kicked identity is not found by identity", lambda: participants("bob").fetch(), 404, 20404)
check("status=disconnected filter", [p.sid for p in participants.list(status="disconnected")] == [kicked.sid])
expect_error("kicking twice is 400/53204", lambda: participants(kicked.sid).update(status="disconnected"), 400, 53204)
anonymized = participants(kicked.sid).anonymize().update()
check("anonymize", anonymized.identity == kicked.sid and anonymized.status == "disconnected", vars(anonymized))
ended = rooms(people.sid).update(status="completed")
alice_after = participants(alice["sid"]).fetch()
check("completing the room disconnects everyone at its end time",
      alice_after.status == "disconnected" and alice_after.end_time == ended.end_time, vars(alice_after))
check("a completed room lists its disconnected participants", len(participants.list()) == 3)

# tracks: published through roomd's publishing API, read through the library; subscribe rules
# that exclude one publisher's video; recording rules fetched and replaced.
def roomd_post(path, form):
    req = urllib.request.Request(f"{base_url}{path}", data=urllib.parse.urlencode(form).encode(),
                                 headers={"Authorization": basic}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.load(resp)


studio = rooms.create(unique_name=f"studio-{run}")
members = {}
for who in ("ann", "ben", "cat"):
    members[who] = join(studio.sid, {"Authorization": basic}, {"Identity": who})[1]["sid"]
for who in ("ann", "ben"):
    for kind in ("audio", "video"):
        status, _ = roomd_post(f"/v1/Rooms/{studio.sid}/Participants/{who}/PublishedTracks",
                               {"Kind": kind, "Name": f"{who}-{kind}"})
        check(f"publish {who}'s {kind}", status == 201)
ben = rooms(studio.sid).participants(members["ben"])
published = ben.published_tracks.list()
check("published tracks list", sorted(t.name for t in published) == ["ben-audio", "ben-video"],
      [t.name for t in published])
check("published track fetch by sid", ben.published_tracks(published[0].sid).fetch().name == published[0].name)
check("published track fields", published[0].sid.startswith("MT") and published[0].enabled is True
      and published[0].kind in ("audio", "video") and isinstance(published[0].date_created, datetime.datetime))
cat = rooms(studio.sid).participants(members["cat"])
check("subscribed tracks, all by default",
      sorted(t.name for t in cat.subscribed_tracks.list()) == ["ann-audio", "ann-video", "ben-audio", "ben-video"])
check("default subscribe rules", cat.subscribe_rules.fetch().rules[0]["all"] is True)
updated = cat.subscribe_rules.update(rules=[{"type": "include", "all": True},
                                            {"type": "exclude", "publisher": "ben", "kind": "video"}])
check("subscribe rules update", len(updated.rules) == 2, updated.rules)
subscribed = cat.subscribed_tracks.list()
check("an excluded video disappears from subscribed tracks",
      sorted(t.name for t in subscribed) == ["ann-audio", "ann-video", "ben-audio"], [t.name for t in subscribed])
check("subscribed track fetch", cat.subscribed_tracks(subscribed[0].sid).fetch().publisher_sid
      in (members["ann"], members["ben"]))
expect_error("bad subscribe rules are 400/53215", lambda: cat.subscribe_rules.update(rules=[{"type": "maybe"}]),
             400, 53215)
recording = rooms(studio.sid).recording_rules
check("recording rules, none by default", recording.fetch().rules == [])
replaced = recording.update(rules=[{"type": "include", "kind": "audio"}])
check("recording rules replaced", replaced.rules == [{"type": "include", "kind": "audio"}], replaced.rules)
check("recording rules fetched", recording.fetch().rules == [{"type": "include", "kind": "audio"}])
expect_error("bad recording rules are 400/53120", lambda: recording.update(rules=[{"type": "include", "kind": "data"}]),
             400, 53120)

# status callbacks: a local receiver checks every request with the library's RequestValidator and
# the account's auth token, as an application would; on room-ended it reads the room first.
validator = RequestValidator(auth_token)
received = []


def start_receiver(handle):
    """A local receiver: handle(params, request) for each POST, then 204."""

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            handle(dict(urllib.parse.parse_qsl(body, keep_blank_values=True)), self)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def validate_and_record(params, request):
    url = f"http://127.0.0.1:{request.server.server_port}{request.path}"
    valid = validator.validate(url, params, request.headers.get("X-Twilio-Signature", ""))
    completed = None
    if params.get("StatusCallbackEvent") == "room-ended":
        completed = rooms(params["RoomSid"]).fetch().status == "completed"
    received.append((params, valid, completed))


hook = start_receiver(validate_and_record)
hook_url = f"http://127.0.0.1:{hook.server_port}/room-events"
called = rooms.create(unique_name=f"called-{run}", status_callback=hook_url)
for who in ("dan", "eve"):
    join(called.sid, {"Authorization": basic}, {"Identity": who})
roomd_post(f"/v1/Rooms/{called.sid}/Participants/dan/PublishedTracks", {"Kind": "audio", "Name": "mic"})
req = urllib.request.Request(f"{base_url}/v1/Rooms/{called.sid}/Participants/dan/PublishedTracks/mic",
                             headers={"Authorization": basic}, method="DELETE")
urllib.request.urlopen(req, timeout=10).close()
rooms(called.sid).participants("eve").update(status="disconnected")
rooms(called.sid).update(status="completed")
expected = ["room-created", "participant-connected", "participant-connected", "track-added", "track-removed",
            "participant-disconnected", "participant-disconnected", "room-ended"]
deadline = time.time() + 20
while len(received) < len(expected) and time.time() < deadline:
    time.sleep(0.05)
events = [p["StatusCallbackEvent"] for p, _, _ in received]
check("status callbacks: every event of the room's life, in order", events == expected, events)
check("status callbacks: each one valid for RequestValidator", received and all(v for _, v, _ in received),
      [(p["StatusCallbackEvent"], v) for p, v, _ in received])
check("status callbacks: SequenceNumber counts up from 0",
      [int(p["SequenceNumber"]) for p, _, _ in received] == list(range(len(received))))
check("status callbacks: room-ended after the room reads completed", received and received[-1][2] is True)
check("status callbacks: a tampered request fails RequestValidator",
      received and not validator.validate(hook_url, {**received[0][0], "RoomName": "forged"},
                                          validator.compute_signature(hook_url, received[0][0])))
log = []
for _ in range(100):
    with urllib.request.urlopen(urllib.request.Request(f"{base_url}/v1/Rooms/{called.sid}/Callbacks",
                                                       headers={"Authorization": basic}), timeout=10) as resp:
        log = json.load(resp)["callbacks"]
    if len(log) == len(expected) and all(e["status"] == "delivered" for e in log):
        break
    time.sleep(0.05)
check("status callbacks: the delivery log shows them all delivered",
      [(e["event"], e["status"]) for e in log] == [(e, "delivered") for e in expected], log)
hook.shutdown()

# test clocks: on an account whose time stands still, each timeout is reached by an advance, and
# the rooms, participants and callbacks read as they would after that much real time.
clocked = Client(clock_sid, clock_token)
clocked.video.base_url = base_url
clock_basic = "Basic " + base64.b64encode(f"{clock_sid}:{clock_token}".encode()).decode()
clock_events = []
clock_hook = start_receiver(lambda params, request: clock_events.append(params))
clock_url = f"http://127.0.0.1:{clock_hook.server_port}/events"


def advance(seconds):
    response = clocked.request("POST", f"{base_url}/v1/TestClock", data={"Advance": seconds})
    check(f"advance {seconds} s", response.status_code == 200, response.text)
    return json.loads(response.text)


def clock_event(room_sid, event):
    for _ in range(200):
        found = [e for e in clock_events if e["RoomSid"] == room_sid and e["StatusCallbackEvent"] == event]
        if found:
            return found[0]
        time.sleep(0.05)
    return {}


frozen = clocked.request("GET", f"{base_url}/v1/TestClock")
check("GET /v1/TestClock", frozen.status_code == 200 and json.loads(frozen.text)["account_sid"] == clock_sid,
      frozen.text)
unused = clocked.video.v1.rooms.create(unused_room_timeout=5, status_callback=clock_url)
empty = clocked.video.v1.rooms.create(empty_room_timeout=1, status_callback=clock_url)
status, gone = join(empty.sid, {"Authorization": clock_basic}, {"Identity": "gone"})
clocked.video.v1.rooms(empty.sid).participants(gone["sid"]).update(status="disconnected")
long_room = clocked.video.v1.rooms.create(max_participant_duration=600, empty_room_timeout=5,
                                          status_callback=clock_url)
status, stayer = join(long_room.sid, {"Authorization": clock_basic}, {"Identity": "stayer"})
advance(299)
check("test clock: nothing ends before its time", clocked.video.v1.rooms(unused.sid).fetch().status == "in-progress")
advance(602)
unused_now = clocked.video.v1.rooms(unused.sid).fetch()
check("test clock: unused timeout, duration 300",
      unused_now.status == "completed" and unused_now.duration == 300
      and unused_now.end_time == unused.date_created + datetime.timedelta(seconds=300), vars(unused_now))
check("test clock: room-ended with RoomDuration=300",
      clock_event(unused.sid, "room-ended").get("RoomDuration") == "300")
empty_now = clocked.video.v1.rooms(empty.sid).fetch()
check("test clock: empty timeout, duration 60", empty_now.status == "completed" and empty_now.duration == 60,
      vars(empty_now))
cut = clocked.video.v1.rooms(long_room.sid).participants(stayer["sid"]).fetch()
check("test clock: max participant duration, 600 s", cut.status == "disconnected" and cut.duration == 600, vars(cut))
check("test clock: participant-disconnected with ParticipantDuration=600",
      clock_event(long_room.sid, "participant-disconnected").get("ParticipantDuration") == "600")
long_now = clocked.video.v1.rooms(long_room.sid).fetch()
check("test clock: the emptied room ends 5 minutes later", long_now.status == "completed" and long_now.duration == 900,
      vars(long_now))
backwards = clocked.request("POST", f"{base_url}/v1/TestClock", data={"Advance": "-1"})
check("test clock: backwards is 400/20001",
      backwards.status_code == 400 and json.loads(backwards.text)["code"] == 20001, backwards.text)
no_clock = client.request("GET", f"{base_url}/v1/TestClock")
check("test clock: an account without one gets 404/20404",
      no_clock.status_code == 404 and json.loads(no_clock.text)["code"] == 20404, no_clock.text)
clock_hook.shutdown()

# wrong credentials
bad = Client(account_sid, "0" * 32)
bad.video.base_url = base_url
expect_error("wrong token is 401/20003", lambda: bad.video.v1.rooms(room.sid).fetch(), 401, 20003)
try:
    bad.video.v1.rooms.list()
    check("wrong token on list raises", False, "no exception")
except TwilioException:
    check("wrong token on list raises", True)

failed = results.count(False)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
