# The local sandbox's terminals run `bash --rcfile` this file, interactive: it reads what a
# login shell reads (E2B's terminals run `bash -i -l`), then puts the kernel's venv first on
# PATH, as commands have it. /etc/profile sets PATH anew, so without this a terminal's
# `python` and `pip` would not be the kernel's: `pip install` there would install where the
# kernel does not import from.
if [ -r /etc/profile ]; then . /etc/profile; fi
for _e2b_rc in ~/.bash_profile ~/.bash_login ~/.profile; do
    if [ -r "$_e2b_rc" ]; then . "$_e2b_rc"; break; fi
done
unset _e2b_rc
if [ -n "$VIRTUAL_ENV" ]; then PATH="$VIRTUAL_ENV/bin:$PATH"; export PATH; fi
