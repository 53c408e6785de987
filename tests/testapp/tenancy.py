def product_tenant(instance):
    return getattr(instance, "shop", None) or None


def lead_tenant(instance):
    return instance.company or None
