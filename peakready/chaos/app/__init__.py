"""App tier: instances of the storefront group (lab supervisor / AWS Auto Scaling group)."""
