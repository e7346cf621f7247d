"""Steps the real-browser UI tests share."""

from __future__ import annotations

from typing import Any


def upload(page: Any, files: list[Any], names: list[str]) -> None:  # noqa: ANN401 - a Playwright Page
    """Put files in the app's uploader and wait until it lists every one of them.

    A Streamlit rerun can re-mount the uploader and drop files set while it ran; the form's
    button sends only what is listed, so the files are set again until all are listed.
    """
    from playwright.sync_api import expect

    expect(page.get_by_role("button", name="Upload and index")).to_be_visible(timeout=60_000)
    for attempt in range(3):
        page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(files)
        try:
            for name in names:
                expect(page.get_by_role("button", name=f"Remove {name}")).to_be_visible(
                    timeout=20_000)
            return
        except AssertionError:
            if attempt == 2:
                raise

