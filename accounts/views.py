"""Instructor accounts: sign up (then signed in at once). Sign-in, sign-out and password reset
are Django's own views (``accounts/urls.py``)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model, login
from django.contrib.auth.forms import UserCreationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme


class SignUpForm(UserCreationForm):  # type: ignore[type-arg]
    """An instructor's account: a username, an email address for password resets, a password."""

    email = forms.EmailField(
        required=True, help_text="Only to reset your password if you forget it."
    )

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")

    def clean_email(self) -> str:
        email: str = self.cleaned_data["email"].strip().lower()
        if get_user_model().objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(
                "An account already uses this address. Reset its password instead."
            )
        return email


def sign_up(request: HttpRequest) -> HttpResponse:
    """Create an instructor account and sign in; then go to ``next`` or the front page."""
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}, request.is_secure()):
        next_url = ""
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect(next_url or "home")
    context: dict[str, Any] = {"form": form, "next": next_url}
    return render(request, "registration/signup.html", context, status=400 if form.errors else 200)
