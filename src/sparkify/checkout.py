"""Where the checkout is: the dbt project, the data and every server's state
folder (.pgdata/, .spark/, .dagster/) are found from here. The package is
installed editable from the checkout (make venv), so this file lies in it."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
