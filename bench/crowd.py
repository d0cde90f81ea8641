"""The crowd writing in: customer ``n`` has an address of their own and writes one realistic message."""

from __future__ import annotations

from support import mails

SUPPORT = "support@example.org"
NAMES = ("Jane Doe", "Ravi Patel", "Ana Lima", "Tom Becker", "Mei Chen", "Olu Ade", "Sara Berg", "Luis Cruz")
TOPICS = (
    ("my order arrived damaged", "order #{order} arrived with a cracked lid and the seal was broken"),
    ("Invoice shows the wrong VAT number", "invoice {order} still shows our old VAT number DE{order}77"),
    ("Cannot log in since the update", "since yesterday's update the app says my password is wrong"),
    ("Charged twice for one order", "my card statement shows order #{order} twice, both on the same day"),
    ("Where is my parcel?", "the tracking page for order #{order} has not changed for six days"),
    ("Question about the warranty", "the hinge of the unit I bought in March ({order}) feels loose"),
)


def name(n: int) -> str:
    return NAMES[n % len(NAMES)]


def address(n: int) -> str:
    return f"{name(n).split()[0].lower()}.{n}@example.com"


def mail(n: int) -> bytes:
    """Customer ``n``'s first message: a few paragraphs and a signature; every other one also in HTML."""
    subject, problem = TOPICS[n % len(TOPICS)]
    order = 100_000 + n
    first = name(n).split()[0]
    body = (
        f"Hello,\n\n{problem.format(order=order)}. I can send photos if that helps.\n\n"
        "Could you tell me what happens next and roughly when? I need it sorted before the end of the month.\n\n"
        f"Thanks a lot,\n{first}\n\n-- \n{name(n)}\n+49 30 1234 {n % 10000:04d}\n"
    )
    html = None
    if n % 2:
        paragraphs = "".join(f"<p>{p}</p>" for p in body.split("\n\n") if p.strip())
        html = f'<html><body style="font-family: Arial">{paragraphs}</body></html>'
    return mails.mail(
        sender=f"{name(n)} <{address(n)}>",
        to=SUPPORT,
        subject=f"{subject} (#{order})",
        body=body,
        html=html,
        return_path=address(n),
        message_id=f"bench.{n}.{order}@mail.example.com",
    )
