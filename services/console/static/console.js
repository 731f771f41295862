// Small enhancements on top of pages that work without JavaScript.
"use strict";
