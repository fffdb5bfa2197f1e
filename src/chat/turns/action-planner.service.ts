import { Injectable } from '@nestjs/common';
import type { ActionType, ImageMode } from '../../contract/index.js';

// A plain request for a picture, in English and Chinese. Kept as patterns (no LLM call) so the
// decision is instant, free and deterministic: the client sees `meta` or `image_pending` at once.
const ENGLISH = [
  /\b(draw|paint|sketch|illustrate|doodle|render)\b/i,
  /\b(generate|create|make|produce|show|give|send)\b.{0,40}\b(image|picture|pic|photo|drawing|painting|illustration|portrait|wallpaper|logo|sketch)s?\b/i,
  /\b(image|picture|photo|drawing|painting|illustration|portrait) of\b/i,
];
const CHINESE = [
  /画/,
  /(生成|做|来|给我|创作|制作|设计).{0,12}(图|图片|图像|照片|插画|壁纸|头像|海报)/,
  /(图片|图像|照片|插画)/,
];
// Asking about pictures is not asking for one.
const NEGATIVE = [
  /\b(don'?t|do not|no need to|without)\b.{0,20}\b(draw|image|picture)/i,
  /(不要|别|无需|不用).{0,6}(画|图)/,
];

/** Picks the action of a turn whose `image` block is present but not forced. */
@Injectable()
export class ActionPlannerService {
  plan(content: string, mode: ImageMode): ActionType {
    if (!this.wantsImage(content)) return 'reply_text';
    return mode === 'image_only' ? 'reply_image' : 'reply_text_image';
  }

  wantsImage(content: string): boolean {
    if (NEGATIVE.some((pattern) => pattern.test(content))) return false;
    return [...ENGLISH, ...CHINESE].some((pattern) => pattern.test(content));
  }
}
