#!/usr/bin/env python3
"""The console's browser suite (run by tests/console/run.sh): headless Chromium signs in to
roomd's console and watches and acts on what twilio-python and plain HTTP do through the API.
It saves the README's screenshots on the way.
"""
import argparse
import http.server
import json
import os
import sys
import threading
import time
import urllib.parse

import requests
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from twilio.rest import Client

PASSED = []
XSS = "<img src=x onerror=alert(1)>"


def check(name, ok, detail=""):
    if not ok:
        print(f"FAILED: {name} {detail}", flush=True)
        raise SystemExit(1)
    PASSED.append(name)
    print(f"ok: {name}", flush=True)


def eventually(probe, timeout=15.0, every=0.2):
    end = time.time() + timeout
    while time.time() < end:
        try:
            value = probe()
        except Exception:  # the page is being replaced under us: look again
            value = None
        if value:
            return value
        time.sleep(every)
    return None


class Receiver:
    """A status callback receiver on loopback that answers 200 and keeps what it got."""

    def __init__(self):
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                received.append(dict(urllib.parse.parse_qsl(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/status"

    def events(self, name):
        return [r for r in self.received if r.get("StatusCallbackEvent") == name]


class Attacker:
    """Another site's page that posts a form to the console as soon as it loads."""

    def __init__(self, action, fields):
        inputs = "".join(f'<input type="hidden" name="{k}" value="{v}">' for k, v in fields.items())
        page = (f'<!doctype html><title>prize</title><form method="post" action="{action}">{inputs}'
                '</form><script>document.forms[0].submit()</script>').encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *a):
                pass

        # Another origin: a port of its own (127.0.0.1: the same site, so the browser sends the
        # console's SameSite=Strict cookie; localhost: another site, so it does not).
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.other_site_url = f"http://localhost:{self.server.server_address[1]}/"


def no_alert(driver):
    try:
        driver.switch_to.alert
        return False
    except NoAlertPresentException:
        return True


def shot(driver, args, name):
    os.makedirs(args.shots, exist_ok=True)
    driver.save_screenshot(os.path.join(args.shots, f"{name}.png"))


def sign_in(driver, args, sid, token, keyboard=False):
    driver.get(f"{args.roomd}/console/sign-in")
    field = driver.find_element(By.ID, "sid")
    field.clear()
    if keyboard:
        field.click()
        field.send_keys(sid, Keys.TAB, token, Keys.ENTER)
    else:
        field.send_keys(sid)
        driver.find_element(By.ID, "token").send_keys(token)
        driver.find_element(By.XPATH, "//button[text()='Sign in']").click()


def sign_out(driver):
    driver.find_element(By.XPATH, "//button[text()='Sign out']").click()
    eventually(lambda: "/console/sign-in" in driver.current_url)


def mark(driver):
    """Marks the page: the mark survives only as long as the page is not reloaded."""
    driver.execute_script("window.__notReloaded = true")


def not_reloaded(driver):
    return driver.execute_script("return window.__notReloaded === true")


def row(driver, table, text):
    for tr in driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr"):
        if text in tr.text:
            return tr
    return None


def main():
    p = argparse.ArgumentParser()
    for a in ["roomd", "account", "token", "other", "clocked", "shots"]:
        p.add_argument(f"--{a}", required=True)
    args = p.parse_args()
    other = json.loads(args.other)
    clocked = json.loads(args.clocked)

    client = Client(args.account, args.token)
    client.video.base_url = args.roomd
    video = client.video.v1
    auth = (args.account, args.token)
    receiver = Receiver()

    opts = Options()
    for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--window-size=1280,900"]:
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=Service(executable_path="/usr/bin/chromedriver"))
    try:
        run(args, driver, video, auth, receiver, other, clocked)
    finally:
        driver.quit()
    print(f"console suite: {len(PASSED)} passed, 0 failed", flush=True)


def run(args, driver, video, auth, receiver, other, clocked):
    # A wrong token: an error, and no session.
    sign_in(driver, args, args.account, "0" * 32)
    error = eventually(lambda: driver.find_element(By.ID, "sign-in-error"))
    check("a wrong token shows an error on the sign-in page", error and "do not match" in error.text)
    check("a wrong token opens no session", not any(c["name"] == "roomd_console" for c in driver.get_cookies()))
    driver.get(f"{args.roomd}/console/rooms")
    check("without a session the rooms page leads to sign-in", "/console/sign-in" in driver.current_url)
    labels = [e.text for e in driver.find_elements(By.TAG_NAME, "label")]
    check("the sign-in form's fields are labelled Account SID and Auth token",
          "Account SID" in labels and "Auth token" in labels, labels)
    driver.find_element(By.ID, "sid").send_keys(args.account)
    shot(driver, args, "sign-in")

    # Signing in with the keyboard alone.
    sign_in(driver, args, args.account, args.token, keyboard=True)
    check("signing in with the keyboard reaches the rooms page",
          eventually(lambda: driver.current_url.endswith("/console/rooms")), driver.current_url)
    cookie = next((c for c in driver.get_cookies() if c["name"] == "roomd_console"), None)
    check("the session cookie is HttpOnly and SameSite=Strict",
          cookie and cookie["httpOnly"] and cookie.get("sameSite") == "Strict", cookie)

    # A room created through the API appears without a reload.
    mark(driver)
    room = video.rooms.create(unique_name="daily-standup", status_callback=receiver.url)
    link = eventually(lambda: driver.find_element(By.ID, f"room-{room.sid}"))
    check("a room created through the API appears on the rooms page without a reload",
          link and link.text == "daily-standup" and not_reloaded(driver))
    hostile = video.rooms.create(unique_name=XSS)
    shown = eventually(lambda: driver.find_element(By.ID, f"room-{hostile.sid}"))
    check("a room named <img src=x onerror=alert(1)> shows as those characters",
          shown and shown.text == XSS and no_alert(driver)
          and not driver.find_elements(By.CSS_SELECTOR, "#live img"), shown and shown.text)
    video.rooms.create(unique_name="design-review", type="group-small")
    eventually(lambda: "design-review" in driver.find_element(By.ID, "live").text)
    shot(driver, args, "rooms")
    earlier = video.rooms.create(unique_name="yesterday")
    eventually(lambda: driver.find_elements(By.ID, f"room-{earlier.sid}"))
    video.rooms(earlier.sid).update(status="completed")
    check("a room ended through the API moves to Recently ended, completed, without a reload",
          eventually(lambda: (tr := driver.find_element(By.CSS_SELECTOR, f"tr[data-sid='{earlier.sid}']"))
                     and "completed" in tr.text
                     and tr.find_element(By.XPATH, "ancestor::div[@class='scroll']/preceding-sibling::h2[1]").text
                     == "Recently ended")
          and not_reloaded(driver))

    # The Create form makes a room through the API's own path.
    driver.find_element(By.ID, "new-name").send_keys("retro")
    driver.find_element(By.ID, "new-max").send_keys("4")
    driver.find_element(By.ID, "create-room").click()
    made = eventually(lambda: "/console/rooms/RM" in driver.current_url and driver.current_url.rsplit("/", 1)[1])
    check("the Create form creates the room it describes",
          made and video.rooms(made).fetch().max_participants == 4
          and video.rooms(made).fetch().unique_name == "retro", made)
    driver.get(f"{args.roomd}/console/rooms")

    # A room's page: participants join and a kicked one leaves, live.
    link = driver.find_element(By.ID, f"room-{room.sid}")
    link.click()
    eventually(lambda: driver.current_url.endswith(f"/console/rooms/{room.sid}"))
    mark(driver)
    joined = {}
    for identity in ["alice", "bob"]:
        r = requests.post(f"{args.roomd}/v1/Rooms/{room.sid}/Participants", auth=auth,
                          data={"Identity": identity}, timeout=10)
        joined[identity] = r.json()["sid"]
    check("participants who join appear on the room page without a reload",
          eventually(lambda: row(driver, "connected", "alice") and row(driver, "connected", "bob"))
          and not_reloaded(driver))
    for kind, name in [("audio", "mic"), ("video", "camera")]:
        requests.post(f"{args.roomd}/v1/Rooms/{room.sid}/Participants/alice/PublishedTracks", auth=auth,
                      data={"Kind": kind, "Name": name}, timeout=10).raise_for_status()
    check("tracks a participant publishes appear with their publisher",
          eventually(lambda: row(driver, "tracks", "camera") and "alice" in row(driver, "tracks", "camera").text))
    check("the callback log shows each event's delivery",
          eventually(lambda: row(driver, "callbacks", "participant-connected")
                     and "delivered" in row(driver, "callbacks", "room-created").text))
    driver.set_window_size(1280, 1500)
    shot(driver, args, "room")
    driver.set_window_size(1280, 900)
    driver.find_element(By.ID, f"kick-{joined['bob']}").click()
    check("a kicked participant leaves the connected list for the past one",
          eventually(lambda: row(driver, "past", "bob") and not row(driver, "connected", "bob")))
    kicked = requests.get(f"{args.roomd}/v1/Rooms/{room.sid}/Participants/{joined['bob']}", auth=auth, timeout=10)
    check("the kick is the API's kick", kicked.json()["status"] == "disconnected", kicked.text)

    # Replay a callback.
    eventually(lambda: receiver.events("room-created"))
    first = row(driver, "callbacks", "room-created")
    first.find_element(By.TAG_NAME, "button").click()
    check("a replayed callback is delivered again", eventually(lambda: len(receiver.events("room-created")) == 2),
          len(receiver.events("room-created")))

    # A cross-site form post changes nothing.
    attacker = Attacker(f"{args.roomd}/console/rooms/{room.sid}/end", {"csrf": "forged"})
    driver.get(attacker.url)
    refused = eventually(lambda: driver.find_element(By.ID, "error-message"))
    check("a form posted from another origin of the same site (cookie sent) is refused with 403",
          refused and "not sent from this console" in refused.text, driver.page_source[:300])
    driver.get(attacker.other_site_url)
    check("a form posted from another site gets no session (the cookie is SameSite=Strict)",
          eventually(lambda: "/console/sign-in" in driver.current_url), driver.current_url)
    check("the refused posts ended nothing", video.rooms(room.sid).fetch().status == "in-progress")

    # End the room (after confirming).
    driver.get(f"{args.roomd}/console/rooms/{room.sid}")
    driver.find_element(By.ID, "end-room").click()
    eventually(lambda: not no_alert(driver))
    driver.switch_to.alert.accept()
    check("End room ends the room", eventually(lambda: video.rooms(room.sid).fetch().status == "completed"))
    check("the room page shows it completed, with no End button",
          eventually(lambda: "completed" in driver.find_element(By.CSS_SELECTOR, "dl.settings").text
                     and not driver.find_elements(By.ID, "end-room")))

    # Readable at 400% zoom: at a quarter of 1280 CSS pixels the page reflows, nothing scrolls sideways.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 320, "height": 800, "deviceScaleFactor": 1, "mobile": False})
    width = driver.execute_script("return document.documentElement.scrollWidth")
    wide = driver.execute_script(
        "return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 321 && !e.closest('.scroll'))"
        ".slice(0, 8).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right) + ' in ' + e.parentElement.tagName + '.' + e.parentElement.className + ' ' + Math.round(e.parentElement.getBoundingClientRect().right) + ' ' + getComputedStyle(e.parentElement).overflowX)")
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    check("at 400% zoom (320 CSS pixels) the room page needs no sideways scrolling", width <= 321, (width, wide))

    # Another account sees none of it.
    sign_out(driver)
    sign_in(driver, args, other["sid"], other["auth_token"])
    eventually(lambda: driver.current_url.endswith("/console/rooms"))
    text = driver.find_element(By.TAG_NAME, "main").text
    check("a second account never sees the first's rooms", "daily-standup" not in text and room.sid not in text)
    driver.get(f"{args.roomd}/console/rooms/{room.sid}")
    check("a second account cannot open the first's room", "daily-standup" not in driver.page_source
          and driver.find_elements(By.ID, "error-message"))
    driver.find_element(By.LINK_TEXT, "Back").click()
    sign_out(driver)

    # A test clock: advance it and watch a room end.
    sign_in(driver, args, clocked["sid"], clocked["auth_token"])
    eventually(lambda: driver.current_url.endswith("/console/rooms"))
    driver.find_element(By.LINK_TEXT, "Test clock").click()
    eventually(lambda: driver.current_url.endswith("/console/clock"))
    clock_client = Client(clocked["sid"], clocked["auth_token"])
    clock_client.video.base_url = args.roomd
    waiting = clock_client.video.v1.rooms.create(unique_name="nobody-comes", unused_room_timeout=5)
    check("the clock page lists the rooms in progress",
          eventually(lambda: driver.find_elements(By.ID, f"room-{waiting.sid}")))
    before = driver.find_element(By.ID, "frozen-time").text
    shot(driver, args, "clock")
    field = driver.find_element(By.ID, "advance")
    field.clear()
    field.send_keys("600")
    driver.find_element(By.ID, "advance-clock").click()
    check("Advance moves the clock", eventually(lambda: driver.find_element(By.ID, "frozen-time").text != before))
    check("a room whose unused timeout fell due ends as the clock passes it",
          clock_client.video.v1.rooms(waiting.sid).fetch().status == "completed"
          and eventually(lambda: not driver.find_elements(By.ID, f"room-{waiting.sid}")))


if __name__ == "__main__":
    main()
