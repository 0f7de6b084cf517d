"""Headless Chromium for the report tests: load a local report.html with a URL fragment, dump
the DOM after the page's own script ran, and read the cells, legend and evidence panel from it.
Shared by the unit browser tests and the lab test of a real run. Only local files are opened."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check"]


def dump_dom(path, fragment=""):
    """The DOM of ``file://path#fragment`` once its scripts ran, from a throwaway profile."""
    profile = tempfile.mkdtemp(prefix="netcheck-chromium-")
    try:
        argv = [CHROMIUM] + FLAGS + ["--user-data-dir=%s" % profile, "--dump-dom", "file://%s#%s" % (path, fragment)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=90, check=True)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert "</html>" in done.stdout, done.stderr[-2000:]
    return done.stdout


class Dom(HTMLParser):
    """The cells, legend swatches and the evidence panel's text of a dumped page."""

    def __init__(self, text):
        super().__init__()
        self.cells, self.legend, self.body = {}, {}, {}
        self.groups, self.drills = {}, {}
        self._panel_depth = 0
        self.panel_text = []
        self.panel_attrs = {}
        self.feed(text)
        self.panel = " ".join(" ".join(self.panel_text).split())

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "body":
            self.body = attrs
        if tag == "td" and "c" in classes:
            self.cells[(attrs["data-s"], attrs["data-t"])] = attrs
        if tag == "td" and "g" in classes:
            self.groups[(attrs["data-s"], attrs["data-t"])] = attrs
        if tag == "div" and "drill" in classes:
            self.drills[attrs["id"]] = attrs
        if tag == "span" and "data-legend" in attrs:
            self.legend[attrs["data-legend"]] = attrs.get("data-bg")
        if tag == "aside":
            self.panel_attrs = attrs
            self._panel_depth = 1
        elif self._panel_depth and tag not in ("br", "img", "input", "meta"):
            self._panel_depth += 1

    def handle_endtag(self, tag):
        if self._panel_depth:
            self._panel_depth -= 1

    def handle_data(self, data):
        if self._panel_depth:
            self.panel_text.append(data)


def rgb(value):
    return tuple(int(x) for x in re.findall(r"\d+", value)[:3])


def is_green(value):
    red, green, blue = rgb(value)
    return green > red + 30 and green > blue + 30
