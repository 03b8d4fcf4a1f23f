"""A real SMTP server (aiosmtpd) that keeps each message it accepts as a file.

Used by scripts/with-peers.sh: every message is written to DIR/<uuid>.eml
(written under a temporary name, then renamed, so a reader never sees half a
message), with its envelope recipients first as "X-Envelope-To:" lines.
"""

import argparse
import asyncio
import os
import uuid

from aiosmtpd.controller import Controller


class Keep:
    def __init__(self, directory):
        self.directory = directory

    async def handle_DATA(self, server, session, envelope):
        name = os.path.join(self.directory, uuid.uuid4().hex)
        head = "".join(f"X-Envelope-To: {r}\r\n" for r in envelope.rcpt_tos).encode()
        with open(name + ".tmp", "wb") as f:
            f.write(head + envelope.original_content)
        os.rename(name + ".tmp", name + ".eml")
        return "250 Message accepted for delivery"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--dir", required=True)
    a = p.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    c = Controller(Keep(a.dir), hostname="127.0.0.1", port=a.port)
    c.start()
    try:
        asyncio.get_event_loop().run_until_complete(asyncio.Event().wait())
    finally:
        c.stop()


if __name__ == "__main__":
    main()
