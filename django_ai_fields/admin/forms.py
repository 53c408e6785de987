"""The ProviderCredential form: the API key is write-only; a tenant-bound user
may only give base URLs on ``TENANT_BASE_URLS`` and gets a form error, not a
500, for a second credential of the same provider."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from ..models import ProviderCredential
from ..tenants.base_urls import allowed_prefixes, on_allowlist


class ProviderCredentialForm(forms.ModelForm):
    """The stored (encrypted) key never reaches the page: the form has no field for
    it, only a password input that replaces the key when filled in."""

    new_api_key = forms.CharField(
        label=_("API key"),
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Stored encrypted. Leave blank to keep the current key."),
    )
    base_url = forms.URLField(
        label=_("base URL"),
        required=False,
        assume_scheme="https",
        help_text=_("Blank: the provider's default, or the one in settings."),
    )
    clear_api_key = forms.BooleanField(
        label=_("Remove the stored key"), required=False, initial=False
    )

    # Set by ProviderCredentialAdmin.get_form for a tenant-bound user (no superuser):
    # the tenant the row is written for, and that TENANT_BASE_URLS applies.
    bound_tenant: str | None = None
    limited_to_allowlist = False

    class Meta:
        model = ProviderCredential
        fields = ("tenant", "provider", "base_url", "default_model")

    def clean_base_url(self) -> str:
        url: str = self.cleaned_data.get("base_url") or ""
        unchanged = self.instance.pk is not None and url == self.instance.base_url
        if url and self.limited_to_allowlist and not unchanged and not on_allowlist(url):
            prefixes = ", ".join(allowed_prefixes())
            if not prefixes:
                raise forms.ValidationError(
                    _("Only the operator may set a base URL for this deployment.")
                )
            raise forms.ValidationError(
                _("This base URL is not allowed. Allowed prefixes: %(prefixes)s"),
                params={"prefixes": prefixes},
            )
        return url

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("new_api_key") and data.get("clear_api_key"):
            raise forms.ValidationError(_("Enter a new key or remove the key, not both."))
        self._check_unique_for_bound_tenant(data)
        return data

    def _check_unique_for_bound_tenant(self, data: dict[str, Any]) -> None:
        """The tenant field is read-only for a tenant-bound user, so Django's own
        unique check skips (tenant, provider): do it here."""
        if self.bound_tenant is None or not data.get("provider"):
            return
        taken = ProviderCredential.objects.filter(
            tenant=self.bound_tenant, provider=data["provider"]
        ).exclude(pk=self.instance.pk)
        if taken.exists():
            self.add_error("provider", _("Your tenant already has a credential for this provider."))

    def save(self, commit: bool = True) -> ProviderCredential:
        credential: ProviderCredential = super().save(commit=False)
        if self.cleaned_data.get("new_api_key"):
            credential.set_api_key(self.cleaned_data["new_api_key"])
        elif self.cleaned_data.get("clear_api_key"):
            credential.api_key = ""
        if "base_url" in self.changed_data:
            # Who gave the current URL: a tenant-bound user's is checked on every call.
            credential.base_url_from_tenant = bool(credential.base_url) and (
                self.limited_to_allowlist
            )
        if commit:
            credential.save()
        return credential
