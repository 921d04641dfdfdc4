"""The emulator's account and default region: moto's, named once for the emulator and its extensions."""

ACCOUNT_ID = "123456789012"  # moto's default account
DEFAULT_REGION = "us-east-1"
