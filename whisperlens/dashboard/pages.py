"""The dashboard's HTML pages, each rendered by the one jinja2 renderer (study/render.py): the
report (every study's view blocks), the feature browser, a feature's page and the page for the
user's own audio (transcript, timeline, poke, attention)."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, request

from ..study.render import render
from . import params
from .feature_view import feature_view
from .shared import feature_index, state

blueprint = Blueprint("pages", __name__)


@blueprint.get("/")
def report():
    run = state()["run"]
    return render("dashboard_report.html.j2", title=f"whisperlens: {run.root.name}", run=str(run.root),
                  sections=run.sections(), has_store=run.store is not None)


@blueprint.get("/features")
def features():
    index = feature_index()
    query = params.feature_query(request.args, index.sites, index.bases, index.phones)
    page = index.search(query)
    kept = {k: v for k, v in request.args.items() if k not in ("page",) and v}

    def url(**changes) -> str:
        return "/features?" + urlencode({**kept, **{k: v for k, v in changes.items()}})

    sort_urls = {column: url(sort=column, order="asc" if query.sort == column and query.descending else "desc", page=1)
                 for column in ("feature", "site", "basis", "phone", "selectivity", "max", "firing", "score")}
    return render("dashboard_features.html.j2", title="Features", page=page, query=query, index=index,
                  sort_urls=sort_urls, previous=url(page=query.page - 1) if query.page > 1 else "",
                  next=url(page=query.page + 1) if query.page < page.pages else "")


@blueprint.get("/features/<feature_id>")
def feature(feature_id: str):
    store = state()["workbench"].require_store()
    view = feature_view(store, feature_id)
    return render("dashboard_feature.html.j2", title=view["id"], feature=view,
                  model=store.manifest["model"], mode=store.manifest["mode"])


@blueprint.get("/listen")
def listen():
    app_state = state()
    store = app_state["workbench"].store
    sites = [s for s in store.sites if not store.site_info(s)["hook"].startswith("decoder.")] if store else []
    return render("dashboard_listen.html.j2", title="Your audio", sites=sites, max_upload_mb=app_state["max_upload_mb"],
                  clip=params.text(request.args, "clip"))
