import { ActionPlannerService } from './action-planner.service.js';

/** Requests for a picture, in English and Chinese. */
const PICTURE_REQUESTS = [
  'draw me a cat',
  'Can you paint a sunset over the sea?',
  'generate an image of a red bicycle',
  'show me a picture of Paris at night',
  '给我画一只猫',
  '帮我生成一张海边日落的图片',
  '来张可爱的小狗照片',
];

/** Plain conversation, asking not to draw included. */
const CONVERSATION = [
  'hello',
  'What is the capital of France?',
  '你好',
  '今天天气怎么样？',
  "please don't draw anything, just explain",
  '不要画图，解释一下',
];

describe('ActionPlannerService', () => {
  const planner = new ActionPlannerService();

  it.each([
    ...PICTURE_REQUESTS.map((content) => [content, 'reply_text_image', 'reply_image'] as const),
    ...CONVERSATION.map((content) => [content, 'reply_text', 'reply_text'] as const),
  ])('plans %j as %s (text_image) and %s (image_only)', (content, textImage, imageOnly) => {
    expect(planner.plan(content, 'text_image')).toBe(textImage);
    expect(planner.plan(content, 'image_only')).toBe(imageOnly);
  });
});
