"""LOTUS's sem_filter over the same rows as `tagbench bench-ops`, against the same
OpenAI-compatible server, for a side-by-side row in its report.

Usage: python sem_filter.py CSV TEMPLATE BASE_URL MODEL [ROWS]
Prints one JSON object: {"rows", "passing", "seconds"}. Needs `pip install lotus-ai`.
"""

import json
import sys
import time

import pandas as pd
import lotus
from lotus.models import LM


def main() -> None:
    csv_path, template, base_url, model = sys.argv[1:5]
    rows = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    frame = pd.read_csv(csv_path, keep_default_na=False)
    if rows > 0:
        frame = frame.head(rows)
    lm = LM(model=f"openai/{model}", api_base=base_url, api_key="not-needed", temperature=0.0, max_tokens=256)
    lotus.settings.configure(lm=lm)
    started = time.perf_counter()
    passing = frame.sem_filter(template)
    seconds = time.perf_counter() - started
    print(json.dumps({"rows": len(frame), "passing": len(passing), "seconds": seconds}))


if __name__ == "__main__":
    main()
