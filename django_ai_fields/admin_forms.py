"""The ProviderCredential form: the API key is write-only."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from .models import ProviderCredential


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

    class Meta:
        model = ProviderCredential
        fields = ("tenant", "provider", "base_url", "default_model")

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("new_api_key") and data.get("clear_api_key"):
            raise forms.ValidationError(_("Enter a new key or remove the key, not both."))
        return data

    def save(self, commit: bool = True) -> ProviderCredential:
        credential: ProviderCredential = super().save(commit=False)
        if self.cleaned_data.get("new_api_key"):
            credential.set_api_key(self.cleaned_data["new_api_key"])
        elif self.cleaned_data.get("clear_api_key"):
            credential.api_key = ""
        if commit:
            credential.save()
        return credential
