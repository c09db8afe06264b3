"""Writes tickets.csv for the `support` demo dataset (made up by this project).

Deterministic: the same seed gives the same file. Each request comes with one reply that
addresses it and replies that do not, so that `llm_filter('Did {support_response} address
{request}?')` has real work to do, and repeated request/reply pairs make deduplication and
prompt-prefix sharing measurable. Run: python3 datasets/support/generate.py
"""
import csv
import datetime
import os
import random

PRODUCTS = ["CloudSync Drive", "PixelNote", "PayFlow", "HomeHub Router", "TaskPilot"]

# (category, request, reply that addresses it)
CASES = [
    ("billing", "I was charged twice for my {product} subscription this month. Please refund the duplicate charge.",
     "I'm sorry about the double charge. I have refunded the duplicate payment; it will reach your card in 3-5 business days."),
    ("billing", "How do I download an invoice for my {product} plan? Our accounting team needs it.",
     "You can download every invoice under Settings > Billing > Invoices. I have also emailed you the latest one as a PDF."),
    ("billing", "Please cancel my {product} subscription at the end of the current period.",
     "Done: your subscription is cancelled and stays active until the end of the current billing period. You won't be charged again."),
    ("billing", "Can I switch my {product} plan from monthly to yearly billing and keep my data?",
     "Yes. I switched you to yearly billing today; your data is untouched and the unused part of this month was credited."),
    ("billing", "My company card expired. How do I update the payment method for {product}?",
     "Go to Settings > Billing > Payment method and choose Replace card. The next charge will use the new card."),
    ("login", "I forgot my {product} password and the reset email never arrives.",
     "I resent the reset email and whitelisted your address; please also check the spam folder. The link is valid for 24 hours."),
    ("login", "Two-factor codes from my authenticator app are rejected by {product}.",
     "The codes failed because your phone clock was 4 minutes off. Enable automatic time on the phone and the codes will work."),
    ("login", "My {product} account is locked after too many login attempts.",
     "I unlocked your account. For safety, please set a new password at the next login."),
    ("login", "How can I enable single sign-on with Google for my team in {product}?",
     "SSO is under Admin > Security > Single sign-on. Choose Google Workspace and follow the three steps; it takes about five minutes."),
    ("bug", "{product} crashes every time I open a file larger than 2 GB.",
     "This is a known bug with files over 2 GB. Version 4.2.1, released today, fixes it; please update and try again."),
    ("bug", "The {product} app shows a blank screen after the latest update on Android.",
     "Clearing the app cache fixes the blank screen: Settings > Apps > {product} > Storage > Clear cache. A permanent fix ships next week."),
    ("bug", "Sync in {product} stopped working after I renamed a shared folder.",
     "Renaming a shared folder broke its sync link. I re-linked the folder on our side; sync resumed and no files were lost."),
    ("bug", "Exported CSV files from {product} have broken characters in names with accents.",
     "The export used the wrong encoding. Choose UTF-8 in the export dialog; we also made UTF-8 the default in today's update."),
    ("bug", "Notifications from {product} arrive hours late on my iPhone.",
     "Background refresh was disabled for the app. Enable it under Settings > General > Background App Refresh and notifications arrive instantly."),
    ("feature_request", "Please add a dark mode to {product}; the white screen hurts at night.",
     "Thanks for the suggestion! Dark mode is in beta: enable it under Settings > Labs > Dark mode."),
    ("feature_request", "Could {product} support exporting reports to PDF?",
     "PDF export is on our roadmap for next quarter. I added your vote to the request and will let you know when it ships."),
    ("feature_request", "We need an API for {product} to connect it to our internal tools.",
     "There is a REST API already: the docs are at Help > Developers, and you can create an API key under Settings > Integrations."),
    ("feature_request", "Please let us set different permissions for viewers and editors in {product}.",
     "Role-based permissions are available on the Business plan: Admin > Members > Roles lets you define viewers and editors."),
    ("shipping", "My {product} device was supposed to arrive last week and the tracking has not changed.",
     "The carrier lost the parcel. I shipped a replacement by express today; here is the new tracking number: EX48213."),
    ("shipping", "The {product} box arrived damaged and the device does not power on.",
     "I'm sorry it arrived broken. A replacement is on its way and a prepaid return label for the damaged unit is attached."),
    ("shipping", "Can I change the delivery address of my {product} order?",
     "I updated the delivery address; the order has not left the warehouse yet, so it will go to the new address."),
    ("performance", "{product} has become very slow to load my dashboard since Monday.",
     "A database migration on Monday slowed dashboards for some accounts. It finished this morning; load times are back to normal."),
    ("performance", "My {product} internet speed drops every evening around 8 pm.",
     "The evening drop comes from channel congestion. I switched your router to the 5 GHz band on a free channel; speeds should stay stable."),
    ("performance", "Uploads to {product} take forever on our office network.",
     "Your uploads were limited by the bandwidth cap in your admin settings. I raised the cap, and uploads now run at full speed."),
]

# Replies that do not address any particular request.
UNHELPFUL = [
    "Thank you for contacting support. Have you tried restarting the device?",
    "We value your feedback and have forwarded it to the relevant team.",
    "Please see our FAQ for answers to common questions.",
    "Thanks for reaching out! Is there anything else I can help you with?",
    "Our team is looking into it and will get back to you soon.",
    "Please make sure you are using the latest version of the app.",
]

TIERS = ["free", "pro", "business"]
PRIORITY = {"billing": "normal", "login": "high", "bug": "high", "feature_request": "low", "shipping": "normal", "performance": "normal"}


def main(count=240, seed=7):
    rng = random.Random(seed)
    start = datetime.date(2024, 1, 2)
    rows = []
    for ticket_id in range(1, count + 1):
        category, request, good = rng.choice(CASES)
        product = rng.choice(PRODUCTS)
        addressed = rng.random() < 0.7
        response = good if addressed else rng.choice(UNHELPFUL)
        created = start + datetime.timedelta(days=rng.randrange(0, 365))
        status = rng.choices(["closed", "open", "pending"], weights=[7, 2, 1])[0]
        resolved = created + datetime.timedelta(days=rng.randrange(0, 6)) if status == "closed" else None
        satisfaction = None
        if status == "closed":
            satisfaction = rng.choice([4, 5, 5]) if addressed else rng.choice([1, 2, 2, 3])
        rows.append([
            ticket_id, created.isoformat(), resolved.isoformat() if resolved else "", product, category,
            PRIORITY[category], rng.choice(TIERS), status,
            request.format(product=product), response.format(product=product),
            satisfaction if satisfaction is not None else "",
        ])
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tickets.csv")
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["ticket_id", "created_date", "resolved_date", "product", "category", "priority",
                         "customer_tier", "status", "request", "support_response", "satisfaction"])
        writer.writerows(rows)


if __name__ == "__main__":
    main()
