"""The floor: fetch N messages with imapclient and send N replies with smtplib, nothing else.

Run as its own process (``python -m bench.floor``) so that it is timed like ``closeloop once``: whole process,
interpreter start included. It prints its inner timings as JSON. Messages are fetched 200 UIDs per FETCH (as
closeloop does) and each is sent back to its customer over one SMTP connection; the i-th UID is customer
``first + i``, so nothing needs parsing.
"""

from __future__ import annotations

import argparse
import json
import smtplib
import time

from imapclient import IMAPClient

from bench.crowd import address

BATCH = 200


def fetch(host: str, port: int, username: str, password: str) -> list[bytes]:
    client = IMAPClient(host, port=port, ssl=False, timeout=30)
    client.login(username, password)
    client.select_folder("INBOX", readonly=True)
    uids = sorted(client.search("ALL"))
    raws = []
    for start in range(0, len(uids), BATCH):
        batch = uids[start : start + BATCH]
        fetched = client.fetch(batch, ["BODY.PEEK[]"])
        raws += [fetched[uid][b"BODY[]"] for uid in batch]
    client.logout()
    return raws


def send(host: str, port: int, replies: list[tuple[str, bytes]]) -> None:
    with smtplib.SMTP(host, port, timeout=30) as smtp:
        for recipient, raw in replies:
            smtp.sendmail("support@example.org", [recipient], raw)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--imap", required=True, help="HOST:PORT")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--smtp", required=True, help="HOST:PORT")
    parser.add_argument("--first", type=int, default=0)
    args = parser.parse_args()

    imap_host, _, imap_port = args.imap.rpartition(":")
    smtp_host, _, smtp_port = args.smtp.rpartition(":")
    started = time.perf_counter()
    raws = fetch(imap_host, int(imap_port), args.user, args.password)
    fetched = time.perf_counter()
    send(smtp_host, int(smtp_port), [(address(args.first + i), raw) for i, raw in enumerate(raws)])
    sent = time.perf_counter()
    print(json.dumps({"messages": len(raws), "fetch_s": fetched - started, "send_s": sent - fetched}))


if __name__ == "__main__":
    main()
