"""The trusted reputation issuers on the settings page (docs/PROTOCOL.md §Trust-list).

A section of /operator/settings/ (no URL of its own): the list of issuers, a form to add or
edit one (a name and its keys), and delete. Every write goes through
`services.reputation_issuer_save` / `reputation_issuer_delete`, which apply the one rule set
(`orders.services.reputation_issuers.issuer_entry_errors`), audit and republish the info event.
"""

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.shortcuts import redirect

from mostro_site.config import rules
from mostro_site.config.reputation import reputation_settings
from mostro_site.models import ReputationImport, ReputationIssuer
from mostro_site.operator.services import reputation_issuer_delete, reputation_issuer_save
from nostrbridge.node_identity import encode_npub, export_issuer_keys, reputation_issuer_keys
from orders.services.reputation_issuers import issuer_entry_errors

FORM_NAME = "issuer"


class ReputationIssuerForm(forms.Form):
    form = forms.CharField(widget=forms.HiddenInput, initial=FORM_NAME)
    issuer_id = forms.IntegerField(widget=forms.HiddenInput, required=False)
    # Not stripped: a padded name is refused, not silently changed (imports key on the exact name).
    name = forms.CharField(
        label="Issuer name", max_length=200, strip=False, help_text="Imports are deduplicated on it."
    )
    keys = forms.CharField(
        label="Keys",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="The issuer's signing keys, npub or hex, one per line. Add a rotated key to the same issuer.",
    )

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if self.errors:
            return data
        instance = None
        if data.get("issuer_id"):
            instance = ReputationIssuer.objects.filter(pk=data["issuer_id"]).first()
            if instance is None:
                raise ValidationError("This issuer was deleted meanwhile.")
        data["instance"] = instance
        data["key_texts"] = rules.split_list(data["keys"])
        for field, problems in issuer_entry_errors(
            name=data["name"], keys=data["key_texts"], instance=instance
        ).items():
            for problem in problems:
                self.add_error(field, problem)
        return data


def issuer_form_for(request) -> ReputationIssuerForm:
    """The add form, or the edit form of `?issuer=<id>`."""
    issuer = ReputationIssuer.objects.filter(pk=request.GET.get("issuer") or 0).first()
    if issuer is None:
        return ReputationIssuerForm()
    keys = "\n".join(key.pubkey for key in issuer.keys.all())
    return ReputationIssuerForm(initial={"issuer_id": issuer.pk, "name": issuer.name, "keys": keys})


def handle_issuer_post(request):
    """A POST of this section: a redirect when done, or the bound form to show its errors."""
    if request.POST.get("delete"):
        name = reputation_issuer_delete(user=request.user, issuer_id=int(request.POST["delete"]))
        if name:
            messages.success(request, f"Removed the trusted issuer “{name}”. Its earlier imports stay recorded.")
        return redirect("operator:settings"), None
    form = ReputationIssuerForm(request.POST)
    if not form.is_valid():
        return None, form
    try:
        issuer = reputation_issuer_save(
            user=request.user,
            instance=form.cleaned_data["instance"],
            name=form.cleaned_data["name"],
            key_texts=form.cleaned_data["key_texts"],
        )
    except ValidationError as exc:  # a concurrent change made it invalid since the form was checked
        form.add_error(None, exc)
        return None, form
    messages.success(request, f"Saved the trusted issuer “{issuer.name}”; the info event is republished.")
    return redirect("operator:settings"), None


def reputation_context(request, form: ReputationIssuerForm | None = None) -> dict:
    config = reputation_settings()
    issuer = reputation_issuer_keys()
    imports = dict(
        ReputationImport.objects.values("issuer_name").annotate(n=Count("id")).values_list("issuer_name", "n")
    )
    issuers = [
        {
            "issuer": issuer,
            "npubs": [encode_npub(key.pubkey) for key in issuer.keys.all()],
            "imports": imports.get(issuer.name, 0),
        }
        for issuer in ReputationIssuer.objects.prefetch_related("keys")
    ]
    return {
        "reputation": config,
        "exporting": export_issuer_keys() is not None,
        "issuer_npub": "" if issuer is None else encode_npub(issuer.public_key_hex),
        "issuers": issuers,
        "issuer_form": form or issuer_form_for(request),
    }
