import unittest

from slug import slugify


class SlugifyTest(unittest.TestCase):
    def test_ascii(self):
        self.assertEqual(slugify("Hello, World!"), "hello-world")

    def test_spaces_and_underscores(self):
        self.assertEqual(slugify("  many   spaces_and_underscores "), "many-spaces-and-underscores")

    def test_accents_are_transliterated(self):
        self.assertEqual(slugify("Crème Brûlée!"), "creme-brulee")

    def test_non_latin_is_dropped(self):
        self.assertEqual(slugify("naïve café ☕"), "naive-cafe")


if __name__ == "__main__":
    unittest.main()
