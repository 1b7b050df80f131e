"""The running release is shown where staff and operators look: the staff pages' footer
(signed in only: a sign-in page tells a stranger nothing about the version) and
``tipline --version`` (tests/ops/test_upgrade.py)."""

from __future__ import annotations

from tests.staffsupport import make_staff, sign_in
from tipline.ops.release import __version__


def test_signed_in_staff_pages_show_the_version_in_the_footer(app, client, db_session, vault,
                                                              demo_directory) -> None:
    assert f"tipline {__version__}" not in client.get("/staff/login").get_data(as_text=True)
    user, password, secret = make_staff(db_session, vault, "district_admin", district="slps")
    sign_in(client, user.email, password, secret)
    page = client.get("/staff/", follow_redirects=True)
    assert page.status_code == 200
    assert f'<footer class="site staff-footer"><p>tipline {__version__}</p></footer>' in \
        page.get_data(as_text=True)
