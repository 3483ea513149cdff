# Puts back the env vars an execution's own `envs` replaced (envs.rs: `for_one_execution`,
# for a Python kernel without the SDK's hook): the set-up cell saved their previous values in
# `__e2b_saved_env`. Runs in the kernel's namespace, and may run twice: the second run finds
# nothing saved and changes nothing.
import os as __e2b_os
for __e2b_k, __e2b_v in globals().pop('__e2b_saved_env', {}).items():
    if __e2b_v is None:
        __e2b_os.environ.pop(__e2b_k, None)
    else:
        __e2b_os.environ[__e2b_k] = __e2b_v
del __e2b_os
