"""Screens compose widgets; modals are typed ``ModalScreen[T]`` that dismiss with a result."""
